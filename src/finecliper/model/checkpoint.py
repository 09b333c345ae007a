"""FineCLIPER checkpoints: a directory with the config, the tunable weights and the backbones' identity.

    run/checkpoint/
      config.yaml         ModelConfig (variant, classes, prompts, ...)
      model.safetensors   only the tunable tensors (adapters, temporal embeddings, ln_post, projections)
      backbones.json      sha256, format and file name of each frozen checkpoint the weights expect
      state.pt            optional trainer state (optimizer, scheduler, epoch) for --resume

The frozen towers are not copied (150M+ parameters each): ``from_pretrained`` loads them from the
user's own checkpoint files and refuses any whose hash differs from the recorded one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from finecliper import __version__
from finecliper.config import ConfigError, dump_yaml, from_dict
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.state_dict import key_problems

WEIGHTS, CONFIG, BACKBONES = "model.safetensors", "config.yaml", "backbones.json"


class CheckpointError(ValueError):
    pass


def tunable_state_dict(model: FineCLIPER) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(model: FineCLIPER, directory: str | Path, extra_files: dict[str, bytes] | None = None) -> Path:
    """Write the checkpoint directory atomically: a crash leaves the previous one intact."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    try:
        save_file(tunable_state_dict(model), str(tmp / WEIGHTS),
                  metadata={"finecliper_version": __version__, "variant": model.cfg.variant})
        (tmp / CONFIG).write_text(dump_yaml(model.cfg))
        identities = getattr(model, "backbone_identities", {})
        (tmp / BACKBONES).write_text(json.dumps(identities, indent=2) + "\n")
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
        old = directory.with_name(f".{directory.name}.old")
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_config(directory: str | Path) -> ModelConfig:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a finecliper checkpoint (no {CONFIG}); "
                              f"expected a directory written by `finecliper train`")
    import yaml
    try:
        return from_dict(ModelConfig, yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ConfigError) as e:
        raise CheckpointError(f"{path}: unreadable model config: {e}") from e


def check_backbone(directory: Path, role: str, expected: dict | None, backbone) -> None:
    if expected is None:
        return
    if backbone.identity != expected.get("sha256"):
        raise CheckpointError(
            f"{directory}: these weights were trained on the {role} backbone {expected.get('file')} "
            f"(sha256 {expected.get('sha256', '?')[:12]}…, {expected.get('format')}), but {backbone.source} has sha256 "
            f"{backbone.identity[:12]}…. Pass the same {role} checkpoint file (model.{role}=PATH).")


def load_tunable_weights(model: FineCLIPER, path: Path) -> None:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable safetensors file ({e})") from e
    problems = key_problems(state, tunable_state_dict(model))
    if problems:
        raise CheckpointError(f"{path}: weights do not fit a {model.cfg.variant!r} model ({'; '.join(problems)}); "
                              f"was it saved from another variant or config?")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v)


def load_checkpoint(directory: str | Path, clip=None, longclip=None, overrides: dict | None = None) -> FineCLIPER:
    """Rebuild the model of a checkpoint directory on the given (or recorded) frozen backbones.

    ``clip``/``longclip``: a path or a loaded ``ClipBackbone``; default: the paths in the saved config.
    """
    from finecliper.clip import load
    from finecliper.model.build import build_model

    directory = Path(directory)
    cfg = read_config(directory)
    for k, v in (overrides or {}).items():
        setattr(cfg, k, v)
    identities = json.loads((directory / BACKBONES).read_text()) if (directory / BACKBONES).is_file() else {}
    if isinstance(clip, (str, Path)):
        clip = load(clip, allow_pickle=cfg.allow_pickle)
    if isinstance(longclip, (str, Path)):
        longclip = load(longclip, allow_pickle=cfg.allow_pickle)
    from finecliper.model.build import load_backbones
    clip, longclip = load_backbones(cfg, clip, longclip)
    check_backbone(directory, "clip", identities.get("clip"), clip)
    if longclip is not None:
        check_backbone(directory, "longclip", identities.get("longclip"), longclip)
    model = build_model(cfg, clip, longclip)
    load_tunable_weights(model, directory / WEIGHTS)
    return model
