"""Standard CLIP shapes, for building models without weights (counts on the meta device, benchmarks)."""
from __future__ import annotations

from typing import Any

import torch
from transformers import CLIPConfig, CLIPModel

from finecliper.clip import convert
from finecliper.clip import load as load_clip
from finecliper.clip.tokenizer import load_tokenizer
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER


def clip_config(vision_width=768, vision_layers=12, patch_size=16, image_size=224, text_width=512, text_layers=12,
                context_length=77, embed_dim=512, vocab_size=49408) -> CLIPConfig:
    """OpenAI CLIP layout (QuickGELU, head width 64); defaults are ViT-B/16."""
    cfg = convert.clip_config(vision_width=vision_width, vision_layers=vision_layers, vision_mlp=4 * vision_width,
                              patch_size=patch_size, image_size=image_size, text_width=text_width,
                              text_layers=text_layers, text_mlp=4 * text_width, context_length=context_length,
                              vocab_size=vocab_size, projection_dim=embed_dim, quick_gelu=True)
    cfg._attn_implementation = "sdpa"
    return cfg


# OpenAI's released ViT CLIPs (224 px): the shapes their checkpoints carry (Tab. 8 of the paper compares them)
NAMED_SHAPES: dict[str, dict[str, int]] = {
    "ViT-B/16": dict(vision_width=768, vision_layers=12, patch_size=16, text_width=512, text_layers=12, embed_dim=512),
    "ViT-B/32": dict(vision_width=768, vision_layers=12, patch_size=32, text_width=512, text_layers=12, embed_dim=512),
    "ViT-L/14": dict(vision_width=1024, vision_layers=24, patch_size=14, text_width=768, text_layers=12, embed_dim=768),
}


DEFAULT_SHAPE = "ViT-B/16"


def named_clip_config(name: str, context_length: int = 77) -> CLIPConfig:
    """The layout of a released CLIP by name ("ViT-B/16", "ViT-B/32", "ViT-L/14"); 248 positions for Long-CLIP."""
    if name not in NAMED_SHAPES:
        raise ValueError(f"no CLIP shape named {name!r}; known: {', '.join(NAMED_SHAPES)}")
    return clip_config(**NAMED_SHAPES[name], context_length=context_length)


def random_clip(cfg: CLIPConfig | None = None, device: str | torch.device = "cpu", seed: int = 0) -> CLIPModel:
    """A randomly initialised CLIP with transformers' default init (``device="meta"`` allocates nothing)."""
    cfg = cfg or clip_config()
    torch.manual_seed(seed)
    with torch.device(device):
        return CLIPModel(cfg).eval()


class MetaBackbones:
    """Weightless (meta-device) CLIPs by checkpoint path or by shape name, each built once."""

    def __init__(self):
        self._models: dict[str, Any] = {}
        self.tokenizer = load_tokenizer()

    def clip(self, path: str | None, name: str = DEFAULT_SHAPE, allow_pickle: bool = False,
             context_length: int = 77) -> CLIPModel:
        """The shape of the checkpoint at ``path`` when given, else of the released CLIP ``name``."""
        key = path or f"{name}@{context_length}"
        if key not in self._models:
            config = (load_clip(path, allow_pickle=allow_pickle).model.config if path
                      else named_clip_config(name, context_length=context_length))
            self._models[key] = random_clip(config, device="meta")
        return self._models[key]


def count_parameters(cfg: ModelConfig, shape: str = DEFAULT_SHAPE, backbones: MetaBackbones | None = None,
                     per_module: bool = False) -> dict:
    """Trainable and frozen parameters of the model ``cfg`` describes, built on the meta device (nothing
    allocated): ``{"trainable", "frozen"}``, or ``FineCLIPER.parameter_counts()`` with ``per_module``.

    The backbones' shapes come from ``cfg.clip`` / ``cfg.longclip`` when set, else from the released CLIP
    ``shape`` (and a Long-CLIP ViT-B)."""
    backbones = backbones or MetaBackbones()
    clip = backbones.clip(cfg.clip, shape, cfg.allow_pickle)
    longclip = backbones.clip(cfg.longclip, DEFAULT_SHAPE, cfg.allow_pickle, 248) if cfg.needs_longclip() else None
    with torch.device("meta"):
        counts = FineCLIPER(cfg, clip, longclip, tokenizer=backbones.tokenizer).parameter_counts()
    return counts if per_module else counts["total"]
