"""Tiny CLIP models for tests and the demo, written in each real on-disk format.

``random_tiny_clip()`` builds a small ``CLIPModel`` (< 0.2 s) with every parameter random (LayerNorm
weights and biases too, so a swapped or dropped tensor changes the outputs). ``save_tiny_clip`` writes
it as a transformers directory, an OpenAI ``.pt`` (plain or TorchScript), an open_clip file (plain or
custom-text, optionally wrapped as a training checkpoint) or a Long-CLIP ``.pt``.
``OpenAIReferenceCLIP`` is an independent OpenAI-architecture forward (``nn.MultiheadAttention``,
sequence-first, as OpenAI's model.py) built from an OpenAI-layout state dict: the oracle the loader
is checked against, and the module scripted into the TorchScript archive.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import save as save_safetensors
from torch import nn
from transformers import CLIPConfig, CLIPModel

from finecliper.clip.convert import (
    LONGCLIP_KEEP,
    OPENAI_INT_KEYS,
    clip_config,
    hf_to_openai,
    stretch_positional_embedding,
)
from finecliper.clip.load import build_empty_model
from finecliper.io import atomic_write, write_json

TinyFormat = Literal["hf", "openai", "openai-jit", "open_clip", "open_clip-custom-text", "longclip"]
# keys that open_clip's CustomTextCLIP keeps under `text.` (convert_to_custom_text_state_dict)
_TEXT_PREFIXES = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.", "text_projection")


def tiny_clip_config(
    *,
    vision_width: int = 128,
    vision_layers: int = 2,
    patch_size: int = 16,
    image_size: int = 32,
    text_width: int = 128,
    text_layers: int = 2,
    context_length: int = 77,
    vocab_size: int = 49408,
    projection_dim: int = 32,
    quick_gelu: bool = True,
    **overrides,
) -> CLIPConfig:
    """A small CLIPConfig with the real vocabulary. Widths of 128 give 2 heads of 64, OpenAI's rule
    (heads = width // 64), so the OpenAI-layout formats, which do not store head counts, reload it exactly."""
    return clip_config(
        vision_width=vision_width,
        vision_layers=vision_layers,
        vision_mlp=4 * vision_width,
        patch_size=patch_size,
        image_size=image_size,
        text_width=text_width,
        text_layers=text_layers,
        text_mlp=4 * text_width,
        context_length=context_length,
        vocab_size=vocab_size,
        projection_dim=projection_dim,
        quick_gelu=quick_gelu,
        overrides=overrides,
    )


def random_tiny_clip(seed: int = 0, config: CLIPConfig | None = None, **config_kw) -> CLIPModel:
    """A tiny CLIPModel (fp32, eval, SDPA) with every parameter drawn from a seeded generator."""
    model = build_empty_model(config or tiny_clip_config(**config_kw))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if name == "logit_scale":
                p.copy_(torch.tensor(4.6052))  # ln(100), the trained value
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * r)
            elif "embedding" in name:
                p.copy_(0.1 * r)
            else:
                p.copy_(r / max(p.shape[-1], 1) ** 0.5 if p.ndim > 1 else 0.05 * r)
    return model.eval()


# --------------------------------------------------------------------------- OpenAI reference forward
class _QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class _Block(nn.Module):
    """OpenAI ResidualAttentionBlock: x + attn(ln_1(x)); x + mlp(ln_2(x)). x: (L, N, D) sequence-first."""

    def __init__(self, width: int, heads: int, mlp: int, quick_gelu: bool):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        act: nn.Module = _QuickGELU() if quick_gelu else nn.GELU()
        self.mlp = nn.Sequential(OrderedDict(c_fc=nn.Linear(width, mlp), gelu=act, c_proj=nn.Linear(mlp, width)))
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=attn_mask)[0]
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp: int, quick_gelu: bool):
        super().__init__()
        self.resblocks = nn.ModuleList([_Block(width, heads, mlp, quick_gelu) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for blk in self.resblocks:
            x = blk(x, attn_mask)
        return x


class _Visual(nn.Module):
    def __init__(self, width: int, layers: int, mlp: int, patch: int, grid: int, embed: int, quick_gelu: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(torch.zeros(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = _Transformer(width, layers, width // 64, mlp, quick_gelu)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, embed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 3, H, W) -> (N, E)
        x = self.conv1(x).flatten(2).transpose(1, 2)  # (N, grid², D)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x).transpose(0, 1)).transpose(0, 1)  # seq-first inside
        return self.ln_post(x[:, 0]) @ self.proj


class OpenAIReferenceCLIP(nn.Module):
    """OpenAI CLIP (ViT) built from an OpenAI-layout state dict; Long-CLIP's two-PE forward if present."""

    def __init__(self, sd: dict[str, torch.Tensor], quick_gelu: bool = True):
        super().__init__()
        conv = sd["visual.conv1.weight"]
        grid = int((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        def layers(pre: str) -> int:
            head = pre + "transformer.resblocks."
            return len({k[len(head):].split(".")[0] for k in sd if k.startswith(head)})

        v_width, t_width = conv.shape[0], sd["token_embedding.weight"].shape[1]
        embed = sd["visual.proj"].shape[1]
        self.visual = _Visual(
            v_width, layers("visual."), sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
            conv.shape[-1], grid, embed, quick_gelu,
        )
        ctx = sd["positional_embedding"].shape[0]
        self.token_embedding = nn.Embedding(sd["token_embedding.weight"].shape[0], t_width)
        self.positional_embedding = nn.Parameter(torch.zeros(ctx, t_width))
        self.long = "positional_embedding_res" in sd
        if self.long:
            self.positional_embedding_res = nn.Parameter(torch.zeros(ctx, t_width))
        self.transformer = _Transformer(
            t_width, layers(""), t_width // 64, sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0], quick_gelu
        )
        self.ln_final = nn.LayerNorm(t_width)
        self.text_projection = nn.Parameter(torch.zeros(t_width, embed))
        self.logit_scale = nn.Parameter(torch.zeros(()))
        self.load_state_dict({k: v.float() for k, v in sd.items() if k not in OPENAI_INT_KEYS}, strict=True)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)

    def encode_text(self, text: torch.Tensor) -> torch.Tensor:  # text: (N, L) -> (N, E)
        L = text.shape[1]
        x = self.token_embedding(text)
        if self.long:  # Long-CLIP: mask1·PE + mask2·PE_res, switching at row 20
            keep = (torch.arange(L) < LONGCLIP_KEEP).float().unsqueeze(1)  # (L, 1)
            x = x + keep * self.positional_embedding[:L] + (1 - keep) * self.positional_embedding_res[:L]
        else:
            x = x + self.positional_embedding[:L]
        causal = torch.full((L, L), float("-inf")).triu(1)  # built per call, as OpenAI's build_attention_mask
        x = self.transformer(x.transpose(0, 1), causal).transpose(0, 1)
        x = self.ln_final(x)
        return x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_image(image), self.encode_text(text)


# --------------------------------------------------------------------------- writers
def _is_quick_gelu(model: CLIPModel) -> bool:
    return model.config.text_config.hidden_act == "quick_gelu"


def _torch_save(obj, out: Path) -> None:
    with atomic_write(out) as f:
        torch.save(obj, f)


def _open_clip_config(model: CLIPModel) -> dict:
    v, t = model.config.vision_config, model.config.text_config
    return {
        "model_cfg": {
            "embed_dim": model.config.projection_dim,
            "quick_gelu": _is_quick_gelu(model),
            "vision_cfg": {"image_size": v.image_size, "layers": v.num_hidden_layers, "width": v.hidden_size,
                           "head_width": v.hidden_size // v.num_attention_heads, "patch_size": v.patch_size},
            "text_cfg": {"context_length": t.max_position_embeddings, "vocab_size": t.vocab_size,
                         "width": t.hidden_size, "heads": t.num_attention_heads, "layers": t.num_hidden_layers},
        },
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }


def save_tiny_clip(
    model: CLIPModel,
    out: str | Path,
    fmt: TinyFormat,
    *,
    open_clip_config: bool = True,
    wrap: bool = False,
) -> Path:
    """Write ``model`` in a real on-disk format; returns the path to pass to ``finecliper.clip.load``.

    hf: a ``save_pretrained`` directory. openai: plain ``.pt`` state dict, fp16, with the 3 ints.
    openai-jit: a TorchScript archive of :class:`OpenAIReferenceCLIP`, fp16 (as OpenAI's release).
    open_clip / open_clip-custom-text: ``.safetensors`` or ``.bin``/``.pt`` by ``out``'s suffix (fp32),
    plus ``open_clip_config.json`` beside it when ``open_clip_config``; ``wrap`` (torch formats) saves
    ``{"epoch", "state_dict": {"module." + key: ...}}`` as open_clip's training loop does.
    longclip: ``.pt`` with 248-row ``positional_embedding`` and ``positional_embedding_res``. A 77-position
    model is stretched (§3.1) into both; a 248-position model's PE is written as ``positional_embedding_res``
    and ``positional_embedding`` keeps its first 20 rows, the rest (dead in Long-CLIP's forward) filled with
    fixed noise, so a loader that reads the wrong tensor is caught.
    """
    out = Path(out)
    if fmt == "hf":
        model.save_pretrained(out)
        return out
    sd = {k: v.detach().clone().contiguous() for k, v in hf_to_openai(model.state_dict()).items()}
    if fmt == "openai":
        ints = {"input_resolution": model.config.vision_config.image_size,
                "context_length": model.config.text_config.max_position_embeddings,
                "vocab_size": model.config.text_config.vocab_size}
        _torch_save({**{k: v.half() for k, v in sd.items()}, **ints}, out)
    elif fmt == "openai-jit":
        ref = OpenAIReferenceCLIP(sd, quick_gelu=_is_quick_gelu(model)).eval()
        for name, value in (("input_resolution", model.config.vision_config.image_size),
                            ("context_length", model.config.text_config.max_position_embeddings),
                            ("vocab_size", model.config.text_config.vocab_size)):
            ref.register_buffer(name, torch.tensor(value))  # in the archive's state_dict, as in OpenAI's
        s = model.config.vision_config.image_size
        example = (torch.zeros(1, 3, s, s), torch.tensor([[49406, 320, 49407]]))
        with torch.no_grad(), warnings.catch_warnings():
            # tracing a fixed-size tiny model: shape-check and torch.jit deprecation warnings do not apply
            warnings.simplefilter("ignore", (torch.jit.TracerWarning, DeprecationWarning))
            traced = torch.jit.trace(ref, example, check_trace=False).half()
            with atomic_write(out) as f:
                torch.jit.save(traced, f)
    elif fmt in ("open_clip", "open_clip-custom-text"):
        if fmt == "open_clip-custom-text":
            sd = {(f"text.{k}" if k.startswith(_TEXT_PREFIXES) else k): v for k, v in sd.items()}
        if out.suffix == ".safetensors":
            if wrap:
                raise ValueError("wrap=True needs a torch file (.bin/.pt), not .safetensors")
            with atomic_write(out) as f:
                f.write(save_safetensors(sd))
        else:
            obj = {"epoch": 1, "name": "tiny", "state_dict": {f"module.{k}": v for k, v in sd.items()}} if wrap else sd
            _torch_save(obj, out)
        if open_clip_config:
            write_json(out.parent / "open_clip_config.json", _open_clip_config(model))
    elif fmt == "longclip":
        pe = sd["positional_embedding"]  # (L, D)
        if pe.shape[0] == 77:
            sd["positional_embedding"] = stretch_positional_embedding(pe)
            sd["positional_embedding_res"] = sd["positional_embedding"].clone()
        else:
            g = torch.Generator().manual_seed(1234)
            dead = 0.1 * torch.randn(pe.shape[0] - LONGCLIP_KEEP, pe.shape[1], generator=g)
            sd["positional_embedding"] = torch.cat([pe[:LONGCLIP_KEEP], dead], 0)
            sd["positional_embedding_res"] = pe.clone()
        _torch_save(sd, out)
    else:
        raise ValueError(f"unknown format {fmt!r}; one of hf, openai, openai-jit, open_clip, open_clip-custom-text, longclip")
    return out
