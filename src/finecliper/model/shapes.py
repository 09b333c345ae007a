"""Standard CLIP shapes, for building models without weights (counts on the meta device, benchmarks)."""
from __future__ import annotations

import torch
from transformers import CLIPConfig, CLIPModel


def clip_config(vision_width=768, vision_layers=12, patch_size=16, image_size=224, text_width=512, text_layers=12,
                context_length=77, embed_dim=512, vocab_size=49408) -> CLIPConfig:
    """OpenAI CLIP layout (QuickGELU, head width 64); defaults are ViT-B/16."""
    cfg = CLIPConfig(
        text_config=dict(hidden_size=text_width, intermediate_size=4 * text_width, num_hidden_layers=text_layers,
                         num_attention_heads=max(1, text_width // 64), max_position_embeddings=context_length,
                         vocab_size=vocab_size, hidden_act="quick_gelu", eos_token_id=49407),
        vision_config=dict(hidden_size=vision_width, intermediate_size=4 * vision_width, num_hidden_layers=vision_layers,
                           num_attention_heads=max(1, vision_width // 64), image_size=image_size, patch_size=patch_size,
                           hidden_act="quick_gelu"),
        projection_dim=embed_dim)
    cfg._attn_implementation = "sdpa"
    return cfg


def random_clip(cfg: CLIPConfig | None = None, device: str | torch.device = "cpu", seed: int = 0) -> CLIPModel:
    """A randomly initialised CLIP (``device="meta"`` allocates nothing: for parameter counts)."""
    cfg = cfg or clip_config()
    torch.manual_seed(seed)
    with torch.device(device):
        return CLIPModel(cfg).eval()
