"""Read a CLIP checkpoint from disk without running code from it, and tell which format it is.

Formats (reference.md §2.4): ``hf`` (transformers directory), ``openai`` (plain state dict with the 3 ints),
``openai-jit`` (TorchScript archive), ``open_clip`` (OpenAI keys, no ints), ``open_clip-custom-text``
(``text.``-prefixed text tower), ``longclip`` (``positional_embedding_res``, 248 rows).
"""
from __future__ import annotations

import json
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from finecliper.clip.convert import OPENAI_INT_KEYS, strip_prefix

FORMATS = ("hf", "openai", "openai-jit", "open_clip", "open_clip-custom-text", "longclip")
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
OPEN_CLIP_CONFIG = "open_clip_config.json"
_ALLOW_PICKLE_HINT = "If you trust the file, pass allow_pickle=True (train, evaluate: model.allow_pickle=true; predict: --allow-pickle)."


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit CLIP; the message names the file."""


@dataclass
class RawCheckpoint:
    """What was read from disk: tensors still in the file's own key layout."""

    source: Path                      # the path the user gave (file or directory)
    files: list[Path]                 # weight files actually read (for the identity hash)
    state_dict: dict[str, torch.Tensor]
    format: str
    hf_config: dict | None = None     # config.json of an HF directory
    open_clip_config: dict | None = None  # sibling open_clip_config.json
    dropped: dict[str, Any] = field(default_factory=dict)  # OpenAI's int entries


def is_torchscript_archive(path: Path) -> bool:
    """A TorchScript zip holds ``code/`` and ``constants.pkl``; a torch.save zip holds neither."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({e}). A truncated or interrupted download is the usual cause; "
            "download it again."
        ) from e


def _load_torch(path: Path, allow_pickle: bool) -> Any:
    if is_torchscript_archive(path):
        if not allow_pickle:
            raise CheckpointError(
                f"{path} is a TorchScript archive (OpenAI's JIT format); reading it executes code stored in the "
                f"file, so it is refused by default. {_ALLOW_PICKLE_HINT}"
            )
        try:
            with warnings.catch_warnings():  # OpenAI's release is TorchScript; torch.export cannot read it
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu").state_dict()
        except Exception as e:  # torch.jit raises RuntimeError and friends for broken archives
            raise CheckpointError(f"{path}: cannot read this TorchScript archive ({e})") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as e:
        unsafe: list[str] = []
        if zipfile.is_zipfile(path):
            try:  # lists the GLOBALs the pickle would import, without importing them
                unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            except Exception:
                unsafe = []
        if not unsafe:  # legacy (non-zip) files: the unpickler's message names the global
            unsafe = re.findall(r"GLOBAL ([\w.]+)", str(e))[:1]
        if unsafe:
            names = ", ".join(unsafe)
            raise CheckpointError(
                f"{path} holds pickled Python objects besides tensors ({names}); unpickling them can run "
                f"arbitrary code, so it is refused. {_ALLOW_PICKLE_HINT}"
            ) from e
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (its pickle data cannot be read: {_first_line(e)})") from e
    except Exception as e:  # garbage bytes surface as IndexError, KeyError, UnicodeDecodeError, RuntimeError …
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({_first_line(e)}). A truncated or interrupted download is "
            "the usual cause; download it again."
        ) from e


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def read_weight_file(path: Path, *, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A flat ``{key: tensor}`` from one file, unwrapped from training checkpoints; plus dropped int entries."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    obj = _load_safetensors(path) if path.suffix == ".safetensors" else _load_torch(path, allow_pickle)
    if isinstance(obj, torch.nn.Module):  # a whole pickled model (only readable with allow_pickle=True)
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict (a dict of tensors)")
    # training checkpoints wrap the weights: {"epoch": .., "state_dict": {...}, "optimizer": ...}
    for wrapper in ("state_dict", "model"):
        if isinstance(obj.get(wrapper), dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = obj[wrapper]
            break
    for prefix in ("module.", "_orig_mod."):  # DDP / torch.compile wrappers
        if obj and all(isinstance(k, str) and k.startswith(prefix) for k in obj):
            obj = strip_prefix(obj, prefix)
    dropped = {k: obj[k] for k in OPENAI_INT_KEYS if k in obj}
    sd = {k: v for k, v in obj.items() if k not in dropped}
    if bad := [f"{k} ({type(v).__name__})" for k, v in sd.items() if not isinstance(v, torch.Tensor)]:
        raise CheckpointError(f"{path}: not a state dict; these entries are not tensors: {', '.join(map(str, bad[:8]))}")
    if not sd:
        raise CheckpointError(f"{path}: holds no tensors")
    return sd, dropped


def _read_hf_dir(directory: Path, allow_pickle: bool) -> RawCheckpoint:
    cfg_path = directory / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{directory}: not a transformers CLIP directory (no config.json)")
    cfg = _hf_config(cfg_path)
    name = next((n for n in HF_WEIGHT_FILES if (directory / n).is_file()), None)
    if name is None:
        raise CheckpointError(f"{directory}: no weights; expected one of {', '.join(HF_WEIGHT_FILES)}")
    if name.endswith(".index.json"):
        try:
            weight_map = json.loads((directory / name).read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{directory / name}: not a sharded-weights index ({e})") from e
        files = [directory / f for f in sorted(set(weight_map.values()))]
    else:
        files = [directory / name]
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        part, _ = read_weight_file(f, allow_pickle=allow_pickle)
        sd.update(part)
    return RawCheckpoint(directory, files, sd, "hf", hf_config=cfg)


def _hf_config(cfg_path: Path) -> dict:
    cfg = _read_json(cfg_path)
    if cfg.get("model_type") != "clip":
        raise CheckpointError(
            f"{cfg_path}: model_type is {cfg.get('model_type')!r}; finecliper needs a full CLIPModel "
            "(model_type 'clip', both towers)"
        )
    return cfg


def detect_format(sd: dict[str, torch.Tensor], *, is_jit: bool, had_int_keys: bool) -> str | None:
    """Format name from the key layout (reference §2.4), or None when no CLIP layout matches."""
    keys = sd.keys()
    if any(k.startswith(("vision_model.", "text_model.")) for k in keys):
        return "hf"
    if "positional_embedding_res" in keys:
        return "longclip"
    if any(k.startswith("text.transformer.resblocks.") for k in keys):
        return "open_clip-custom-text"
    if any(k.startswith("visual.transformer.resblocks.") for k in keys):
        if is_jit:
            return "openai-jit"
        # OpenAI's own files carry input_resolution/context_length/vocab_size; open_clip's do not.
        return "openai" if had_int_keys else "open_clip"
    return None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


def read_checkpoint(path: str | Path, *, allow_pickle: bool = False) -> RawCheckpoint:
    """Read any supported CLIP checkpoint (file or HF directory) and name its format."""
    path = Path(path)
    if path.is_dir():
        return _read_hf_dir(path, allow_pickle)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    is_jit = path.suffix != ".safetensors" and is_torchscript_archive(path)
    sd, dropped = read_weight_file(path, allow_pickle=allow_pickle)
    fmt = detect_format(sd, is_jit=is_jit, had_int_keys=bool(dropped))
    if fmt is None:
        if any(k.startswith("visual.layer1.") for k in sd):
            raise CheckpointError(f"{path}: a ResNet CLIP; only ViT CLIP models are supported")
        raise CheckpointError(
            f"{path}: not a CLIP checkpoint; its keys match none of the OpenAI, open_clip, Long-CLIP or "
            f"transformers layouts (first keys: {', '.join(sorted(sd)[:6])})"
        )
    if fmt == "hf":  # a bare HF weight file: its shapes need the config.json beside it
        if not (path.parent / "config.json").is_file():
            raise CheckpointError(
                f"{path}: transformers-layout weights without a config.json beside them; pass the directory "
                "that holds both"
            )
        return RawCheckpoint(path, [path], sd, "hf", hf_config=_hf_config(path.parent / "config.json"))
    if fmt == "open_clip-custom-text":
        sd = strip_prefix(sd, "text.")
    oc_cfg = None
    if fmt.startswith("open_clip") and (path.parent / OPEN_CLIP_CONFIG).is_file():
        oc_cfg = _read_json(path.parent / OPEN_CLIP_CONFIG)
    return RawCheckpoint(path, [path], sd, fmt, open_clip_config=oc_cfg, dropped=dropped)
