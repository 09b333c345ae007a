"""Released FaceXFormer checkpoint (torchvision Swin-B keys) → finecliper's FaceXFormer (transformers Swin).

Upstream builds its backbone as ``nn.Sequential(*list(swin_b().children())[:-1])``, so the released
``state_dict_backbone`` names the Swin stages ``backbone.0.{0..7}`` (torchvision's ``features``) and the
final norm ``backbone.1``; ``backbone.features.*`` / ``backbone.norm.*`` (a plain torchvision SwinTransformer)
are accepted too. torchvision layout of ``features``:

    0: patch embed  (0.0 Conv2d 4x4/4, 0.2 LayerNorm)
    1, 3, 5, 7: stages of SwinTransformerBlocks (norm1, attn.qkv, attn.proj, attn.relative_position_bias_table,
                attn.relative_position_index (buffer), norm2, mlp.0, mlp.3)
    2, 4, 6: PatchMerging (norm, reduction)

transformers' SwinModel (5.x) keeps q/k/v as three Linears; the fused ``qkv`` is split in (q, k, v) order,
which is how torchvision's ``shifted_window_attention`` reshapes it (..., 3, heads, head_dim).
The relative-position index buffers are checked against the standard index and dropped (transformers
recomputes them). Every key outside the backbone is kept unchanged.
"""
from __future__ import annotations

import re

import torch

_BLOCK = {
    "norm1": "layernorm_before",
    "attn.proj": "attention.o_proj",
    "attn.relative_position_bias_table": "attention.relative_position_bias.relative_position_bias_table",
    "norm2": "layernorm_after",
    "mlp.0": "mlp.fc1",
    "mlp.3": "mlp.fc2",
}
_PREFIXES = (("backbone.0.", "backbone.1."), ("backbone.features.", "backbone.norm."))


def relative_position_index(window: int) -> torch.Tensor:
    """torchvision's flat (window⁴,) index into the ((2w-1)², heads) bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)  # (w², w², 2)
    return ((rel[..., 0] + window - 1) * (2 * window - 1) + rel[..., 1] + window - 1).flatten()


def _check_index(name: str, value: torch.Tensor) -> None:
    if value.is_meta:
        return
    window = round(value.numel() ** 0.25)
    if value.numel() != window ** 4 or not torch.equal(value.long().flatten(), relative_position_index(window)):
        raise ValueError(f"{name}: relative_position_index is not the standard Swin index for window {window}")


def _convert_feature_key(rest: str, value: torch.Tensor, full: str) -> dict[str, torch.Tensor] | None:
    """``rest`` = the part after ``backbone.0.``; None when the key is not a known torchvision Swin key."""
    m = re.fullmatch(r"0\.0\.(weight|bias)", rest)
    if m:
        return {f"backbone.embeddings.patch_embeddings.projection.{m[1]}": value}
    m = re.fullmatch(r"0\.2\.(weight|bias)", rest)
    if m:
        return {f"backbone.embeddings.norm.{m[1]}": value}
    m = re.fullmatch(r"(\d+)\.(\d+)\.(.+)", rest)
    if m and int(m[1]) % 2 == 1:  # a stage of blocks: features.{2s+1}.{j}.*
        stage, block, name = (int(m[1]) - 1) // 2, int(m[2]), m[3]
        out = f"backbone.encoder.layers.{stage}.blocks.{block}."
        if name == "attn.relative_position_index":
            _check_index(full, value)
            return {}
        m2 = re.fullmatch(r"attn\.qkv\.(weight|bias)", name)
        if m2:
            q, k, v = value.chunk(3, dim=0)  # (3C, ...) → 3 × (C, ...), torchvision's (q, k, v) order
            return {f"{out}attention.{p}_proj.{m2[1]}": t.contiguous() for p, t in zip("qkv", (q, k, v))}
        m2 = re.fullmatch(r"(.+)\.(weight|bias)", name)
        if m2 and m2[1] in _BLOCK:
            return {f"{out}{_BLOCK[m2[1]]}.{m2[2]}": value}
        if name == "attn.relative_position_bias_table":
            return {f"{out}{_BLOCK[name]}": value}
        return None
    m = re.fullmatch(r"(\d+)\.(norm\.weight|norm\.bias|reduction\.weight)", rest)
    if m and int(m[1]) in (2, 4, 6):  # PatchMerging after stage s = features.{2s+2}
        return {f"backbone.encoder.layers.{int(m[1]) // 2 - 1}.downsample.{m[2]}": value}
    return None


def convert_released_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision-style Swin keys → transformers ``SwinModel`` keys under ``backbone.``; other keys kept.

    Unknown ``backbone.*`` keys are kept as they are, so that a strict load reports them as unexpected.
    """
    if sd and all(k.startswith("module.") for k in sd):  # saved from a DistributedDataParallel wrapper
        sd = {k[len("module."):]: v for k, v in sd.items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        new = None
        for feat, norm in _PREFIXES:
            if key.startswith(feat):
                new = _convert_feature_key(key[len(feat):], value, key)
            elif key.startswith(norm) and key[len(norm):] in ("weight", "bias"):
                new = {f"backbone.layernorm.{key[len(norm):]}": value}
            if new is not None:
                break
        if new is None:
            new = {key: value}
        for k, v in new.items():
            if k in out:
                raise ValueError(f"two checkpoint keys map to {k} (the second is {key})")
            out[k] = v
    return out
