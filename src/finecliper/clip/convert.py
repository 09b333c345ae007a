"""Key maps between the OpenAI/open_clip CLIP layout and transformers' ``CLIPModel``; shape inference.

OpenAI layout (reference.md §2.2): ``visual.*``, ``transformer.resblocks.{i}.*``, fused ``in_proj_*``
(rows q, k, v), ``visual.proj`` / ``text_projection`` used as ``x @ W``.
HF layout (§2.3): ``vision_model.*``, ``text_model.*``, separate ``q/k/v_proj``, projections as
``nn.Linear`` (so transposed). Every conversion here is a pure rename / split / concat / transpose,
so a round trip is exact.
"""
from __future__ import annotations

import copy
import math
import re
from typing import Any, Mapping

import torch
from transformers import CLIPConfig

from finecliper.state_dict import format_key_list  # noqa: F401  (re-exported)

# The OpenAI JIT archive carries these three ints beside the tensors (dropped on load).
OPENAI_INT_KEYS = ("input_resolution", "context_length", "vocab_size")

SOT_TOKEN_ID = 49406
EOT_TOKEN_ID = 49407
# transformers' CLIPTextModel pools at argmax(input_ids) when eos_token_id == 2, exactly as OpenAI's
# encode_text does (EOT is the largest id); this is the value in the hub config of the OpenAI weights.
LEGACY_EOS_TOKEN_ID = 2

LONGCLIP_KEEP = 20  # rows of the OpenAI text PE that Long-CLIP keeps unchanged (reference §3.1)

_TOP = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",  # sic: HF's typo
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
_TOP_INV = {v: k for k, v in _TOP.items()}
# OpenAI stores the projections as (width, embed) matrices used as x @ W; HF Linear weights are (embed, width).
_PROJ = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
_PROJ_INV = {v: k for k, v in _PROJ.items()}
_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
    "attn.out_proj": "self_attn.out_proj",
}
_BLOCK_INV = {v: k for k, v in _BLOCK.items()}

_OPENAI_LAYER = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)\.(weight|bias)$")
_OPENAI_IN_PROJ = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$")
_HF_LAYER = re.compile(r"^(vision_model|text_model)\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_HF_QKV = re.compile(r"^(vision_model|text_model)\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")


class ConversionError(ValueError):
    """A state dict that does not fit the CLIP layout it was taken for (the caller adds the file name)."""


def _tower(prefix: str | None) -> tuple[str, str]:
    """OpenAI layer prefix ('visual.' or None) -> (OpenAI prefix, HF prefix)."""
    return ("visual.", "vision_model") if prefix else ("", "text_model")


def openai_to_hf(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """OpenAI/open_clip ViT CLIP keys -> ``CLIPModel`` keys. Unknown keys raise :class:`ConversionError`."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, t in sd.items():
        if key in _TOP:
            out[_TOP[key]] = t
        elif key in _PROJ:
            out[_PROJ[key]] = t.t().contiguous()  # (width, embed) -> (embed, width)
        elif m := _OPENAI_IN_PROJ.match(key):
            _, hf = _tower(m.group(1))
            if t.shape[0] % 3:
                raise ConversionError(f"{key}: first dim {t.shape[0]} is not 3 x width")
            # rows are [q; k; v]; clone so the halves do not share storage (safetensors refuses that)
            for name, part in zip("qkv", t.chunk(3, dim=0)):
                out[f"{hf}.encoder.layers.{m.group(2)}.self_attn.{name}_proj.{m.group(3)}"] = part.clone()
        elif (m := _OPENAI_LAYER.match(key)) and m.group(3) in _BLOCK:
            _, hf = _tower(m.group(1))
            out[f"{hf}.encoder.layers.{m.group(2)}.{_BLOCK[m.group(3)]}.{m.group(4)}"] = t
        else:
            unknown.append(key)
    if unknown:
        raise ConversionError(f"keys not in the OpenAI CLIP ViT layout: {format_key_list(unknown)}")
    return out


def hf_to_openai(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``CLIPModel`` keys -> OpenAI/open_clip keys (q/k/v fused into ``in_proj``); ``position_ids`` dropped."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str, str], dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, t in sd.items():
        if key.endswith("embeddings.position_ids"):
            continue  # an index buffer, not a weight (older HF files persist it)
        if key in _TOP_INV:
            out[_TOP_INV[key]] = t
        elif key in _PROJ_INV:
            out[_PROJ_INV[key]] = t.t().contiguous()
        elif m := _HF_QKV.match(key):
            qkv.setdefault((m.group(1), m.group(2), m.group(4)), {})[m.group(3)] = t
        elif (m := _HF_LAYER.match(key)) and m.group(3) in _BLOCK_INV:
            pre = "visual." if m.group(1) == "vision_model" else ""
            out[f"{pre}transformer.resblocks.{m.group(2)}.{_BLOCK_INV[m.group(3)]}.{m.group(4)}"] = t
        else:
            unknown.append(key)
    for (tower, layer, kind), parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            lacking = sorted({"q", "k", "v"} - set(parts))
            unknown.extend(f"{tower}.encoder.layers.{layer}.self_attn.{n}_proj.{kind} (missing)" for n in lacking)
            continue
        pre = "visual." if tower == "vision_model" else ""
        out[f"{pre}transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts[n] for n in "qkv"], 0)
    if unknown:
        raise ConversionError(f"keys not in the transformers CLIPModel layout: {format_key_list(unknown)}")
    return out


def strip_prefix(sd: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """Remove ``prefix`` from every key that has it (``module.`` from DDP, ``text.`` from CustomTextCLIP)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in sd.items()}


def _count_layers(keys: list[str], prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.")
    idx = {int(m.group(1)) for k in keys if (m := pat.match(k))}
    if idx != set(range(len(idx))):
        raise ConversionError(f"{prefix or 'text '}transformer blocks are not numbered 0..N-1: {sorted(idx)}")
    return len(idx)


def clip_config(
    *,
    vision_width: int,
    vision_layers: int,
    vision_mlp: int,
    patch_size: int,
    image_size: int,
    text_width: int,
    text_layers: int,
    text_mlp: int,
    context_length: int,
    vocab_size: int,
    projection_dim: int,
    quick_gelu: bool,
    vision_heads: int | None = None,
    text_heads: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> CLIPConfig:
    """A ``CLIPConfig`` with OpenAI's conventions: heads = width // 64, LN eps 1e-5, argmax EOT pooling.

    ``overrides`` is merged last: ``{"text_config": {"num_attention_heads": 4}, "projection_dim": 64}``.
    """
    act = "quick_gelu" if quick_gelu else "gelu"  # HF "gelu" is the exact erf GELU, as nn.GELU
    cfg: dict[str, Any] = {
        "projection_dim": projection_dim,
        "text_config": {
            "vocab_size": vocab_size,
            "hidden_size": text_width,
            "intermediate_size": text_mlp,
            "num_hidden_layers": text_layers,
            "num_attention_heads": text_heads or max(text_width // 64, 1),
            "max_position_embeddings": context_length,
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
            "projection_dim": projection_dim,
            "bos_token_id": SOT_TOKEN_ID,
            "eos_token_id": LEGACY_EOS_TOKEN_ID,
            "pad_token_id": 1,
        },
        "vision_config": {
            "hidden_size": vision_width,
            "intermediate_size": vision_mlp,
            "num_hidden_layers": vision_layers,
            "num_attention_heads": vision_heads or max(vision_width // 64, 1),
            "image_size": image_size,
            "patch_size": patch_size,
            "hidden_act": act,
            "layer_norm_eps": 1e-5,
            "projection_dim": projection_dim,
        },
    }
    cfg = merge_dicts(cfg, overrides or {})
    return CLIPConfig(**cfg)


def merge_dicts(base: dict, over: Mapping[str, Any]) -> dict:
    """Recursive dict merge; ``over`` wins. Inputs are not modified."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge_dicts(out[k], v)
        else:
            out[k] = v
    return out


def infer_clip_config(
    sd: Mapping[str, torch.Tensor], *, quick_gelu: bool, overrides: Mapping[str, Any] | None = None
) -> CLIPConfig:
    """Every shape of an OpenAI-layout ViT CLIP state dict, read off its tensors (as OpenAI's build_model)."""
    needed = [
        "visual.conv1.weight", "visual.positional_embedding", "visual.proj",
        "visual.transformer.resblocks.0.mlp.c_fc.weight",
        "token_embedding.weight", "positional_embedding", "transformer.resblocks.0.mlp.c_fc.weight",
    ]
    if lacking := [k for k in needed if k not in sd]:
        raise ConversionError(f"missing keys needed to infer the model shape: {format_key_list(lacking)}")
    conv = sd["visual.conv1.weight"]  # (width, 3, patch, patch)
    if conv.ndim != 4 or conv.shape[1] != 3 or conv.shape[2] != conv.shape[3]:
        raise ConversionError(f"visual.conv1.weight has shape {tuple(conv.shape)}, expected (width, 3, p, p)")
    n_pos = sd["visual.positional_embedding"].shape[0]  # grid*grid + 1 (class token)
    grid = math.isqrt(n_pos - 1)
    if grid * grid != n_pos - 1:
        raise ConversionError(f"visual.positional_embedding has {n_pos} rows, not a square grid + 1")
    keys = list(sd)
    tok = sd["token_embedding.weight"]  # (vocab, width)
    return clip_config(
        vision_width=conv.shape[0],
        vision_layers=_count_layers(keys, "visual."),
        vision_mlp=sd["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        patch_size=conv.shape[-1],
        image_size=grid * conv.shape[-1],
        text_width=tok.shape[1],
        text_layers=_count_layers(keys, ""),
        text_mlp=sd["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=tok.shape[0],
        projection_dim=sd["visual.proj"].shape[1],
        quick_gelu=quick_gelu,
        overrides=overrides,
    )


def stretch_positional_embedding(pe: torch.Tensor, keep: int = LONGCLIP_KEEP) -> torch.Tensor:
    """Long-CLIP's 77 -> 248 text PE stretch (reference §3.1). pe: (L, D) -> (4L - 3*keep, D).

    Rows < keep are copied; each later gap is split 4x by linear interpolation; 4 rows are linearly
    extrapolated past the end. Written as ((4-m)a + m b)/4 so it is bit-identical to Long-CLIP's loop.
    """
    L = pe.shape[0]
    if not 0 < keep < L - 1:
        raise ValueError(f"keep={keep} must be in 1..{L - 2} for a {L}-row positional embedding")
    a, b = pe[keep:L - 1], pe[keep + 1:L]  # (L-1-keep, D) left/right ends of each gap
    m = torch.arange(4, dtype=pe.dtype, device=pe.device).view(1, 4, 1)
    inner = ((4 - m) * a[:, None] + m * b[:, None]) / 4  # (L-1-keep, 4, D)
    tail = pe[L - 1] + m[0] * (pe[L - 1] - pe[L - 2]) / 4  # (4, D)
    return torch.cat([pe[:keep], inner.reshape(-1, pe.shape[1]), tail], 0)


def longclip_effective_pe(pe: torch.Tensor, pe_res: torch.Tensor, keep: int = LONGCLIP_KEEP) -> torch.Tensor:
    """The PE Long-CLIP's forward actually adds: rows < keep from ``pe``, the rest from ``pe_res`` (§3.2)."""
    if pe.shape != pe_res.shape:
        raise ConversionError(
            f"positional_embedding {tuple(pe.shape)} and positional_embedding_res {tuple(pe_res.shape)} differ in shape"
        )
    return torch.cat([pe[:keep], pe_res[keep:]], 0)
