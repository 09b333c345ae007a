"""``load(path) -> ClipBackbone``: any supported CLIP checkpoint as one transformers ``CLIPModel``.

Every format is converted to ``CLIPModel`` key names and loaded strictly: a missing, unexpected or
mis-shaped tensor is an error naming the file and the keys (in the file's own naming). Nothing is
unpickled beyond tensors unless ``allow_pickle=True``.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import CLIPConfig, CLIPModel

from finecliper.clip.convert import (
    ConversionError,
    hf_to_openai,
    infer_clip_config,
    longclip_effective_pe,
    openai_to_hf,
    merge_dicts,
)
from finecliper.clip.formats import CheckpointError, RawCheckpoint, read_checkpoint
from finecliper.clip.tokenizer import ClipTokenizer, load_tokenizer
from finecliper.data.augment import CLIP_MEAN, CLIP_STD
from finecliper.state_dict import key_problems
from finecliper.io import sha256_file

log = logging.getLogger(__name__)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """images in [0, 1]: (..., 3, H, W) -> CLIP-normalised, same shape."""
    mean = torch.tensor(CLIP_MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images - mean) / std


def _pooled(out: Any) -> torch.Tensor:
    """transformers 5.x returns an output object from get_*_features (4.x a tensor); take the projection."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@dataclass(eq=False)
class ClipBackbone:
    """A loaded CLIP: the ``CLIPModel`` plus where it came from and its tokenizer."""

    model: CLIPModel
    format: str
    source: Path | None
    identity: str  # sha256 of the checkpoint file (directory: of its weight files' hashes)
    tokenizer: ClipTokenizer
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    @property
    def context_length(self) -> int:
        return self.model.config.text_config.max_position_embeddings

    @property
    def image_size(self) -> int:
        return self.model.config.vision_config.image_size

    @property
    def embed_dim(self) -> int:
        return self.model.config.projection_dim

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> "ClipBackbone":
        self.model.to(device=device, dtype=dtype)
        return self

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images: (N, 3, H, W) CLIP-normalised -> (N, E) projected, not L2-normalised (as OpenAI's)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"encode_image expects (N, 3, H, W) images, got shape {tuple(images.shape)}")
        p = self.model.visual_projection.weight
        return _pooled(self.model.get_image_features(pixel_values=images.to(p.device, p.dtype)))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (N, L) long, L <= context_length, EOT = largest id -> (N, E) projected, not normalised."""
        if tokens.ndim != 2 or tokens.dtype != torch.long:
            raise ValueError(f"encode_text expects (N, L) int64 tokens, got {tuple(tokens.shape)} {tokens.dtype}")
        if tokens.shape[1] > self.context_length:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the text context length {self.context_length}")
        device = self.model.text_projection.weight.device
        return _pooled(self.model.get_text_features(input_ids=tokens.to(device)))

    def tokenize(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """-> (N, context_length or the model's) LongTensor, OpenAI ``clip.tokenize`` style."""
        return self.tokenizer(texts, context_length or self.context_length)


def build_empty_model(config: CLIPConfig) -> CLIPModel:
    """A ``CLIPModel`` with uninitialised fp32 weights (SDPA attention), to be filled by load_state_dict."""
    from transformers.initialization import no_init_weights

    with no_init_weights():  # random init of a ViT-B takes seconds and is overwritten at once
        return CLIPModel._from_config(config, attn_implementation="sdpa", dtype=torch.float32)


def check_state_dict(source: Path, sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> None:
    """Raise a CheckpointError listing missing, unexpected and mis-shaped keys (names as in ``sd``)."""
    problems = key_problems(sd, expected)
    if problems:
        raise CheckpointError(f"{source}: does not fit a CLIP model: " + "; ".join(problems))


def _open_clip_overrides(raw: RawCheckpoint) -> dict:
    """Head counts from a sibling open_clip_config.json (its defaults: head_width 64, text heads 8).

    Without one, OpenAI's rule (width // 64) applies; it agrees with every open_clip ViT config."""
    if raw.open_clip_config is None:
        return {}
    cfg = raw.open_clip_config.get("model_cfg", {})
    out: dict[str, dict] = {}
    sd = raw.state_dict
    if "visual.conv1.weight" in sd:
        width = sd["visual.conv1.weight"].shape[0]
        out["vision_config"] = {"num_attention_heads": max(width // cfg.get("vision_cfg", {}).get("head_width", 64), 1)}
    out["text_config"] = {"num_attention_heads": cfg.get("text_cfg", {}).get("heads", 8)}
    return out


def _resolve_quick_gelu(raw: RawCheckpoint, quick_gelu: bool | None) -> bool:
    if raw.format in ("openai", "openai-jit", "longclip"):
        return True if quick_gelu is None else quick_gelu  # OpenAI and Long-CLIP were trained with QuickGELU
    if raw.open_clip_config is not None:
        from_cfg = bool(raw.open_clip_config.get("model_cfg", {}).get("quick_gelu", False))
        if quick_gelu is not None and quick_gelu != from_cfg:
            log.warning(
                "%s: quick_gelu=%s ignored; the open_clip_config.json beside it says quick_gelu=%s",
                raw.source, quick_gelu, from_cfg,
            )
        return from_cfg
    if quick_gelu is not None:
        return quick_gelu
    log.warning(
        "%s: an open_clip checkpoint records no activation and no open_clip_config.json sits beside it; using "
        "GELU (open_clip's default). Pass quick_gelu=True for weights trained with QuickGELU (OpenAI's, '-quickgelu').",
        raw.source,
    )
    return False


def _identity(raw: RawCheckpoint) -> str:
    if raw.source.is_file():
        return sha256_file(raw.source)
    h = hashlib.sha256()
    for f in sorted(raw.files, key=lambda p: p.name):
        h.update(f"{f.name}\t{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _model_from_hf(raw: RawCheckpoint, quick_gelu: bool | None, overrides: Mapping[str, Any] | None) -> CLIPModel:
    cfg = dict(raw.hf_config or {})
    if quick_gelu is not None:
        act = "quick_gelu" if quick_gelu else "gelu"
        cfg = merge_dicts(cfg, {"text_config": {"hidden_act": act}, "vision_config": {"hidden_act": act}})
    cfg = merge_dicts(cfg, overrides or {})
    cfg.pop("model_type", None)
    try:
        config = CLIPConfig.from_dict(cfg)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{raw.source}: its config.json does not describe a CLIPModel ({e})") from e
    model = build_empty_model(config)
    sd = {k: v for k, v in raw.state_dict.items() if not k.endswith("embeddings.position_ids")}
    check_state_dict(raw.source, sd, model.state_dict())
    model.load_state_dict(sd, strict=True)
    return model


def _model_from_openai_layout(
    raw: RawCheckpoint, quick_gelu: bool | None, overrides: Mapping[str, Any] | None
) -> CLIPModel:
    sd = dict(raw.state_dict)
    if raw.format == "longclip":
        if "positional_embedding" not in sd:
            raise CheckpointError(f"{raw.source}: Long-CLIP checkpoint without positional_embedding")
        try:  # effective PE = cat(PE[:20], PE_res[20:]) (reference §3.2)
            sd["positional_embedding"] = longclip_effective_pe(sd["positional_embedding"], sd.pop("positional_embedding_res"))
        except ConversionError as e:
            raise CheckpointError(f"{raw.source}: {e}") from e
    act = _resolve_quick_gelu(raw, quick_gelu)
    base = _open_clip_overrides(raw) if raw.format.startswith("open_clip") else {}
    try:
        config = infer_clip_config(sd, quick_gelu=act, overrides=merge_dicts(base, overrides or {}))
    except (ConversionError, ValueError) as e:
        raise CheckpointError(f"{raw.source}: {e}") from e
    model = build_empty_model(config)
    # compare in the file's own (OpenAI) naming so the error lists keys the user can find in the file
    check_state_dict(raw.source, sd, hf_to_openai(model.state_dict()))
    # copy_ into the fp32 parameters casts OpenAI's fp16 tensors to fp32
    model.load_state_dict(openai_to_hf(sd), strict=True)
    return model


def load(
    path: str | Path,
    *,
    allow_pickle: bool = False,
    quick_gelu: bool | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config_overrides: Mapping[str, Any] | None = None,
    tokenizer: str | Path | ClipTokenizer | None = None,
) -> ClipBackbone:
    """Load a CLIP checkpoint of any supported format (see ``finecliper.clip.formats``).

    quick_gelu: None = the format's own answer (OpenAI/Long-CLIP: QuickGELU; open_clip: the sibling
    open_clip_config.json, else GELU with a warning; HF: config.json). config_overrides is merged into
    the CLIPConfig, e.g. ``{"text_config": {"num_attention_heads": 4}}``. tokenizer: a ClipTokenizer,
    an HF directory or BPE file, or None (the HF directory's own tokenizer files, else the shipped BPE).
    """
    raw = read_checkpoint(path, allow_pickle=allow_pickle)
    if raw.format == "hf":
        model = _model_from_hf(raw, quick_gelu, config_overrides)
    else:
        model = _model_from_openai_layout(raw, quick_gelu, config_overrides)
    model.to(device=device, dtype=dtype).eval()
    context = model.config.text_config.max_position_embeddings
    if isinstance(tokenizer, ClipTokenizer):
        tok = tokenizer
    elif tokenizer is None and raw.format == "hf" and raw.source.is_dir() and _has_tokenizer_files(raw.source):
        tok = load_tokenizer(raw.source, context)
    else:
        tok = load_tokenizer(tokenizer, context)
    return ClipBackbone(model=model, format=raw.format, source=raw.source, identity=_identity(raw), tokenizer=tok)


def _has_tokenizer_files(directory: Path) -> bool:
    return (directory / "tokenizer.json").is_file() or (
        (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file()
    )
