"""Standard CLIP shapes, for building models without weights (counts on the meta device, benchmarks)."""
from __future__ import annotations

import torch
from transformers import CLIPConfig, CLIPModel

from finecliper.clip import convert


def clip_config(vision_width=768, vision_layers=12, patch_size=16, image_size=224, text_width=512, text_layers=12,
                context_length=77, embed_dim=512, vocab_size=49408) -> CLIPConfig:
    """OpenAI CLIP layout (QuickGELU, head width 64); defaults are ViT-B/16."""
    cfg = convert.clip_config(vision_width=vision_width, vision_layers=vision_layers, vision_mlp=4 * vision_width,
                              patch_size=patch_size, image_size=image_size, text_width=text_width,
                              text_layers=text_layers, text_mlp=4 * text_width, context_length=context_length,
                              vocab_size=vocab_size, projection_dim=embed_dim, quick_gelu=True)
    cfg._attn_implementation = "sdpa"
    return cfg


def random_clip(cfg: CLIPConfig | None = None, device: str | torch.device = "cpu", seed: int = 0) -> CLIPModel:
    """A randomly initialised CLIP with transformers' default init (``device="meta"`` allocates nothing)."""
    cfg = cfg or clip_config()
    torch.manual_seed(seed)
    with torch.device(device):
        return CLIPModel(cfg).eval()
