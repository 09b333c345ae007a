"""Build, save and load FineCLIPER models: the one module that knows the checkpoint directory.

    run/fold_1/best/
      config.yaml         ModelConfig (variant, classes, prompts, ...)
      model.safetensors   only the tunable tensors (adapters, temporal embeddings, ln_post, projections)
      backbones.json      {"clip": {"sha256", "format", "file", "path"}, "longclip": {...}}: the frozen
                          checkpoint files the weights were trained on ("path": absolute, where it was)
      state.pt            last/ only: the trainer state for --resume (``train.state``)

The frozen towers are not copied (150M+ parameters each): loading rebuilds them from the user's own
checkpoint files and refuses any whose sha256 differs from the recorded one (CLIP and Long-CLIP alike).
A backbone not given explicitly is looked for (:func:`backbone_candidates`), by its recorded file name
and sha256, in this order: the recorded absolute path, the path in config.yaml, the checkpoint's folder
and its parent, the backbone cache folder (:func:`backbone_cache_dir`). So a checkpoint moved to another
machine or folder loads from any working directory once its backbones sit in one of those places.

The functions take the model class (``FineCLIPER.from_config`` / ``from_pretrained`` /
``save_pretrained`` call them), so this module never imports the model: no import cycle. Loading is
split into small steps that a Hub loader can reuse: :func:`resolve_checkpoint_dir`,
:func:`read_config`, :func:`read_weights`, :func:`read_backbone_identities`,
:func:`check_backbone_identity`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from finecliper import __version__
from finecliper.clip import ClipBackbone
from finecliper.clip import load as load_clip
from finecliper.config import ConfigError, dump_yaml, from_dict
from finecliper.io import replace_dir
from finecliper.model.config import ModelConfig
from finecliper.state_dict import key_problems

WEIGHTS, CONFIG, BACKBONES = "model.safetensors", "config.yaml", "backbones.json"
M = TypeVar("M", bound=torch.nn.Module)
# what a user calls each frozen backbone, and how to pass it (CLI flag / Python keyword)
BACKBONE_NAMES = {"clip": "CLIP", "longclip": "Long-CLIP"}
BACKBONE_FLAGS = {"clip": "--clip PATH (Python: clip=PATH)", "longclip": "--longclip PATH (Python: longclip=PATH)"}
CACHE_ENV = "FINECLIPER_CACHE"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be read, or that does not fit the model or backbones given."""


# ----------------------------------------------------------------------------- frozen backbones

def backbone_identity(backbone: ClipBackbone) -> dict[str, str]:
    """What a checkpoint records of a frozen backbone: content hash, format, file name and absolute path."""
    source = backbone.source
    out = {"sha256": backbone.identity, "format": backbone.format, "file": str(getattr(source, "name", source))}
    if source is not None:
        out["path"] = str(Path(source).resolve())
    return out


def backbone_cache_dir() -> Path:
    """Where frozen backbones are looked for last: ``$FINECLIPER_CACHE/backbones``, else ``~/.cache/finecliper/backbones``."""
    root = os.environ.get(CACHE_ENV) or "~/.cache/finecliper"
    return Path(root).expanduser() / "backbones"


def backbone_candidates(directory: str | Path, recorded: Mapping[str, str], config_path: str | None) -> list[Path]:
    """Places a checkpoint's backbone may be, in the order they are tried (no duplicates).

    The recorded absolute path, the path in config.yaml (relative paths: from the working directory),
    then the recorded file name in the checkpoint's folder, its parent and the backbone cache folder.
    """
    directory = Path(directory)
    name = recorded.get("file")
    places = [recorded.get("path"), config_path]
    if name:
        places += [directory / name, directory.parent / name, backbone_cache_dir() / name]
    out: list[Path] = []
    for p in places:
        if p and Path(p).expanduser().absolute() not in out:
            out.append(Path(p).expanduser().absolute())
    return out


def find_backbone(directory: str | Path, role: str, recorded: Mapping[str, str], config_path: str | None,
                  allow_pickle: bool = False) -> ClipBackbone:
    """The frozen ``role`` backbone a checkpoint records, from the first candidate place whose sha256 matches."""
    tried = []
    for path in backbone_candidates(directory, recorded, config_path):
        if not path.exists():
            tried.append(str(path))
            continue
        backbone = load_clip(path, allow_pickle=allow_pickle)
        if backbone.identity == recorded.get("sha256"):
            return backbone
        tried.append(f"{path} (other sha256)")
    raise CheckpointError(
        f"{directory}: the {BACKBONE_NAMES[role]} backbone {recorded.get('file')} (sha256 {recorded.get('sha256')}) "
        f"was not found (tried {', '.join(tried) or 'nothing: no file name recorded'}); pass {BACKBONE_FLAGS[role]} "
        f"with that file, or put it in {backbone_cache_dir()}")


def load_backbones(cfg: ModelConfig, clip: ClipBackbone | str | Path | None = None,
                   longclip: ClipBackbone | str | Path | None = None) -> tuple[ClipBackbone, ClipBackbone | None]:
    """The frozen backbones a variant needs: loaded backbones or paths given here win over ``cfg``'s paths."""
    clip = clip if clip is not None else cfg.clip
    if not clip:
        raise CheckpointError("no CLIP checkpoint given: set model.clip=PATH (OpenAI .pt, open_clip, HF directory)")
    if isinstance(clip, (str, Path)):
        clip = load_clip(clip, allow_pickle=cfg.allow_pickle)
    if not cfg.needs_longclip():
        return clip, None
    longclip = longclip if longclip is not None else cfg.longclip
    if not longclip:
        raise CheckpointError(f"variant {cfg.variant!r} needs a Long-CLIP checkpoint: set model.longclip=PATH")
    if isinstance(longclip, (str, Path)):
        longclip = load_clip(longclip, allow_pickle=cfg.allow_pickle)
    return clip, longclip


def set_attention(clip_model, implementation: str) -> None:
    """Switch a transformers CLIP's attention kernel (both towers); the math is the same."""
    for cfg in (clip_model.config, clip_model.vision_model.config, clip_model.text_model.config):
        cfg._attn_implementation = implementation


def build(model_class: type[M], cfg: ModelConfig, clip: ClipBackbone | str | Path | None = None,
          longclip: ClipBackbone | str | Path | None = None) -> M:
    """Any variant on its frozen backbones (loaded from ``cfg.clip``/``cfg.longclip`` unless given)."""
    clip, longclip = load_backbones(cfg, clip, longclip)
    identities = {"clip": backbone_identity(clip)}
    for b in (clip, longclip):
        if b is not None:
            set_attention(b.model, cfg.attention)
    if longclip is not None:
        identities["longclip"] = backbone_identity(longclip)
    return model_class(cfg, clip.model, longclip.model if longclip is not None else None,
                       tokenizer=clip.tokenizer, longclip_tokenizer=longclip.tokenizer if longclip is not None else None,
                       backbones=identities)


# ----------------------------------------------------------------------------- weights

def tunable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_weights(model: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Copy saved tunable tensors into ``model``: every key and shape must fit, or nothing is copied."""
    problems = key_problems(tensors, tunable_state_dict(model))
    if problems:
        variant = getattr(getattr(model, "cfg", None), "variant", "?")
        raise CheckpointError(f"{source}: weights do not fit a {variant!r} model ({'; '.join(problems)}); "
                              f"was it saved from another variant or config?")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in tensors.items():
            params[k].copy_(v)


# ----------------------------------------------------------------------------- saving

def save(model: torch.nn.Module, directory: str | Path, extra_files: Mapping[str, bytes] | None = None,
         keep: str | Path | None = None) -> Path:
    """Write the checkpoint directory atomically (``io.replace_dir``): a kill leaves a complete one.

    ``extra_files``: more files of the directory (the trainer's ``state.pt``); ``keep``: where the
    replaced directory goes (a fallback) instead of being deleted.
    """
    cfg: ModelConfig = model.cfg
    identities = getattr(model, "backbone_identities", {})
    missing = [r for r in cfg.backbone_roles() if r not in identities]
    if missing:
        raise CheckpointError(
            f"cannot save to {directory}: the model does not know which {' and '.join(missing)} checkpoint file(s) "
            f"it was built on, so the checkpoint could later load on other backbones; build it with "
            f"FineCLIPER.from_config (or pass backbones= with factory.backbone_identity of each)")
    weights = save_safetensors(tunable_state_dict(model), metadata={"finecliper_version": __version__,
                                                                      "variant": cfg.variant})
    files = {WEIGHTS: weights, CONFIG: dump_yaml(cfg).encode(),
             BACKBONES: (json.dumps({r: identities[r] for r in cfg.backbone_roles()}, indent=2) + "\n").encode(),
             **(extra_files or {})}
    directory = Path(directory)
    with replace_dir(directory, keep) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return directory


# ----------------------------------------------------------------------------- loading, step by step

def resolve_checkpoint_dir(path: str | Path) -> Path:
    """The local checkpoint directory ``path`` names (a Hub loader would download to one first)."""
    directory = Path(path)
    if not (directory / CONFIG).is_file():
        raise CheckpointError(f"{directory}: not a finecliper checkpoint (no {CONFIG}); "
                              f"expected a directory written by `finecliper train` or save_pretrained")
    return directory


def read_config(directory: str | Path) -> ModelConfig:
    path = resolve_checkpoint_dir(directory) / CONFIG
    try:
        return from_dict(ModelConfig, yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ConfigError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable model config: {e}") from e


def read_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    path = Path(directory) / WEIGHTS
    try:
        return load_safetensors(path.read_bytes())
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from e


def read_backbone_identities(directory: str | Path) -> dict[str, dict[str, str]]:
    path = Path(directory) / BACKBONES
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable ({e}); it must say which frozen checkpoints the weights fit") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected an object of backbone identities, got {type(data).__name__}")
    return data


def check_backbone_identity(directory: str | Path, role: str, recorded: Mapping[str, str] | None,
                            actual: Mapping[str, str], source: Any = None) -> None:
    """Refuse a frozen ``role`` backbone ("clip" | "longclip") that is not the one the weights were trained on."""
    if not recorded or not recorded.get("sha256"):
        raise CheckpointError(
            f"{directory}: {BACKBONES} records no {role} backbone, so nothing proves these weights fit the "
            f"{role} checkpoint given; re-save the model from a FineCLIPER built by from_config")
    if recorded["sha256"] != actual.get("sha256"):
        raise CheckpointError(
            f"{directory}: these weights were trained on the {role} backbone {recorded.get('file')} "
            f"(sha256 {recorded['sha256'][:12]}…, {recorded.get('format')}), but {source or actual.get('file')} has "
            f"sha256 {str(actual.get('sha256'))[:12]}…. Pass the same {role} checkpoint file (model.{role}=PATH).")


def check_backbones(directory: str | Path, actual: Mapping[str, Mapping[str, str]], roles: Sequence[str],
                    sources: Mapping[str, Any] | None = None, recorded: Mapping[str, Any] | None = None) -> None:
    """:func:`check_backbone_identity` for every backbone the model uses (CLIP, and Long-CLIP when used).

    ``recorded``: the directory's identities when already read (default: read them here)."""
    recorded = read_backbone_identities(directory) if recorded is None else recorded
    for role in roles:
        check_backbone_identity(directory, role, recorded.get(role), actual.get(role, {}), (sources or {}).get(role))


def require_recorded(directory: Path, roles: tuple[str, ...], recorded: Mapping[str, Any]) -> None:
    """Refuse a checkpoint that records no sha256 for a backbone its variant uses (nothing to look for)."""
    for role in roles:
        if not (recorded.get(role) or {}).get("sha256"):
            check_backbone_identity(directory, role, recorded.get(role), {})  # raises, naming the role


def checkpoint_backbones(directory: Path, cfg: ModelConfig, recorded: Mapping[str, Any],
                         given: Mapping[str, ClipBackbone | str | Path | None]) -> dict[str, ClipBackbone]:
    """Every backbone the checkpoint's variant uses: given ones (a path or a loaded backbone), else found."""
    require_recorded(directory, cfg.backbone_roles(), recorded)
    out = {}
    for role in cfg.backbone_roles():
        rec = recorded[role]
        b = given.get(role)
        if isinstance(b, (str, Path)):
            b = load_clip(b, allow_pickle=cfg.allow_pickle)
        out[role] = b if b is not None else find_backbone(directory, role, rec, getattr(cfg, role), cfg.allow_pickle)
    return out


def load(model_class: type[M], directory: str | Path, clip: ClipBackbone | str | Path | None = None,
         longclip: ClipBackbone | str | Path | None = None) -> M:
    """Rebuild the model of a checkpoint directory on the given frozen backbones, or on the recorded ones
    wherever they are found (:func:`find_backbone`); a given backbone with another sha256 is refused."""
    directory = resolve_checkpoint_dir(directory)
    cfg = read_config(directory)
    recorded = read_backbone_identities(directory)
    backbones = checkpoint_backbones(directory, cfg, recorded, {"clip": clip, "longclip": longclip})
    check_backbones(directory, {r: backbone_identity(b) for r, b in backbones.items()},
                    cfg.backbone_roles(), {r: b.source for r, b in backbones.items()}, recorded)
    model = build(model_class, cfg, backbones["clip"], backbones.get("longclip"))
    load_weights(model, read_weights(directory), directory / WEIGHTS)
    return model
