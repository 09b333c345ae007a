"""One factory for all variants: load the frozen backbones, tokenise the PN prompts, build the model."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER

if TYPE_CHECKING:
    from finecliper.clip import ClipBackbone


def prompt_texts(cfg: ModelConfig, classes: list[str] | None = None) -> tuple[list[str], list[str]]:
    """The positive and negative sentences of every class, e.g. '... of happiness.' / '... of no happiness.'"""
    classes = list(classes if classes is not None else cfg.classes)
    if not classes:
        raise ValueError("model.classes is empty: set the class words (the dataset does this for you)")
    return [cfg.pos_template.format(c) for c in classes], [cfg.neg_template.format(c) for c in classes]


def prompt_tokens(cfg: ModelConfig, tokenize, classes: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    pos, neg = prompt_texts(cfg, classes)
    return tokenize(pos), tokenize(neg)


def load_backbones(cfg: ModelConfig, clip: "ClipBackbone | None" = None,
                   longclip: "ClipBackbone | None" = None) -> tuple["ClipBackbone", "ClipBackbone | None"]:
    """The frozen backbones a variant needs: given objects win over the paths in ``cfg``."""
    from finecliper.clip import load

    if clip is None:
        if not cfg.clip:
            raise ValueError("no CLIP checkpoint given: set model.clip=PATH (OpenAI .pt, open_clip, HF directory)")
        clip = load(cfg.clip, allow_pickle=cfg.allow_pickle)
    if cfg.needs_longclip() and longclip is None:
        if not cfg.longclip:
            raise ValueError(f"variant {cfg.variant!r} needs a Long-CLIP checkpoint: set model.longclip=PATH")
        longclip = load(cfg.longclip, allow_pickle=cfg.allow_pickle)
    return clip, longclip


def set_attention(clip_model, implementation: str) -> None:
    """Switch a transformers CLIP's attention kernel (both towers); the math is the same."""
    if implementation not in ("sdpa", "eager"):
        raise ValueError(f"model.attention must be sdpa or eager, got {implementation!r}")
    for cfg in (clip_model.config, clip_model.vision_model.config, clip_model.text_model.config):
        cfg._attn_implementation = implementation


def describe_backbone(backbone: "ClipBackbone") -> dict[str, str]:
    """What a checkpoint records of a frozen backbone: its content hash, format and file name."""
    return {"sha256": backbone.identity, "format": backbone.format, "file": str(getattr(backbone.source, "name", backbone.source))}


def build_model(cfg: ModelConfig, clip: "ClipBackbone | None" = None,
                longclip: "ClipBackbone | None" = None) -> FineCLIPER:
    """Build any variant. The backbones are loaded from ``cfg.clip``/``cfg.longclip`` unless given."""
    clip, longclip = load_backbones(cfg, clip, longclip)
    # zero-shot: class prompts are read by the description path, so by Long-CLIP's tokenizer
    for m in (clip.model, longclip.model if longclip is not None else None):
        if m is not None:
            set_attention(m, cfg.attention)
    pos, neg = prompt_tokens(cfg, longclip.tokenize if cfg.zero_shot else clip.tokenize)
    model = FineCLIPER(cfg, clip.model, pos, neg, longclip.model if longclip is not None else None)
    model.backbone_identities = {"clip": describe_backbone(clip)}
    if longclip is not None:
        model.backbone_identities["longclip"] = describe_backbone(longclip)
    model.tokenize = longclip.tokenize if cfg.zero_shot else clip.tokenize  # for class prompts
    model.tokenize_description = (longclip or clip).tokenize
    return model
