"""Which face regions drove a prediction: two maps per window, each a heatmap over a grid of its frames.

- gradient x input of the predicted class logit w.r.t. the frames: per pixel |sum over RGB of
  x * dlogit_c/dx|, with x the CLIP-normalised frame (so the reference image is the mean colour); with a
  face parsing of the frames, also as shares per face region (brows, eyes, nose, mouth, ...);
- the last block's CLS attention over patches per frame (the paper's Fig. 6): softmax(q_cls k^T / sqrt(d))
  of the adapted video encoder's last block, averaged over heads. The model runs SDPA, which returns no
  weights, so the row is recomputed from the frozen layer's own q/k projections on exactly the input that
  block's spatial attention sees (caught by a hook on the frozen attention).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch

from finecliper.data.augment import CLIP_MEAN, CLIP_STD
from finecliper.io import atomic_write

# LaPa ids (face.layout) grouped into the regions a reader names.
REGIONS: dict[str, tuple[int, ...]] = {
    "brows": (2, 3), "eyes": (4, 5), "nose": (6,), "mouth": (7, 8, 9), "skin": (1,), "hair": (10,), "background": (0,),
}


def grad_times_input(model: Callable, batch: dict[str, torch.Tensor], target: int) -> torch.Tensor:
    """batch for ONE window (frames (1, T, 3, S, S)) -> attribution (T, S, S) >= 0 of logit ``target``.

    Only the frames get a gradient (``autograd.grad``): the model's weights are untouched.
    """
    frames = batch["frames"].detach().clone().requires_grad_(True)
    if frames.ndim != 5 or frames.shape[0] != 1:
        raise ValueError(f"explain one window at a time: frames must be (1, T, 3, S, S), got {tuple(frames.shape)}")
    with torch.enable_grad():
        out = model({**batch, "frames": frames})
        logits = out.logits if hasattr(out, "logits") else out
        (grad,) = torch.autograd.grad(logits[0, target], frames)
    return (grad * frames.detach()).sum(dim=2)[0].abs().float().cpu()  # (T, S, S)


def cls_attention(attn: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """A CLIP attention layer's CLS row: hidden (B, N, D) (its input, after layer_norm1) -> (B, N - 1),
    the mean over heads of softmax(q_0 k^T * scale) over the N - 1 patch tokens (the CLS column left out)."""
    b, n, _ = hidden.shape
    h, d = attn.num_heads, attn.head_dim
    q = attn.q_proj(hidden[:, :1]).view(b, 1, h, d).transpose(1, 2)          # (B, h, 1, d)
    k = attn.k_proj(hidden).view(b, n, h, d).transpose(1, 2)                 # (B, h, N, d)
    weights = torch.softmax((q @ k.transpose(-1, -2)).float() * attn.scale, dim=-1)  # (B, h, 1, N)
    return weights.mean(dim=1)[:, 0, 1:]


@torch.no_grad()
def last_block_attention(encoder: torch.nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """frames (1, T, 3, S, S) through a ``VideoEncoder`` -> (T, G, G) CLS attention over the G x G patches
    in its last block's spatial attention.

    An adapted block calls the frozen attention twice, over time first and then over space (the
    ``AdaptedBlock`` order); the second call's input is the one kept.
    """
    layer = encoder._vision().encoder.layers[-1]
    seen: list[torch.Tensor] = []

    def keep(module, args, kwargs):
        seen.append(kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])

    handle = layer.self_attn.register_forward_pre_hook(keep, with_kwargs=True)
    try:
        encoder.forward_features(frames)
    finally:
        handle.remove()
    spatial = seen[1]                                                          # (T, N, D)
    a = cls_attention(layer.self_attn, spatial)
    g = int(round(a.shape[1] ** 0.5))
    return a.view(-1, g, g)


def attention_maps(model: torch.nn.Module, frames: torch.Tensor) -> np.ndarray:
    """frames (1, T, 3, S, S) -> (T, S, S) float32: the video encoder's last-block CLS attention, upsampled."""
    a = last_block_attention(model.video_encoder, frames)                      # (T, G, G)
    s = frames.shape[-1]
    up = torch.nn.functional.interpolate(a[:, None].float(), size=(s, s), mode="nearest")[:, 0]
    return up.cpu().numpy()


def region_shares(attr: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """attr (T, S, S) >= 0, labels (T, S, S) LaPa ids -> share of the attribution per region (sums to 1).

    Frames whose parsing is not valid (no face found in the crop) are left out.
    """
    attr, labels = np.asarray(attr, np.float64), np.asarray(labels)
    if attr.shape != labels.shape:
        raise ValueError(f"attribution {attr.shape} and labels {labels.shape} differ in shape")
    if valid is not None:
        attr, labels = attr[np.asarray(valid, bool)], labels[np.asarray(valid, bool)]
    total = float(attr.sum())
    if total <= 0:
        return {}
    return {name: float(attr[np.isin(labels, ids)].sum() / total) for name, ids in REGIONS.items()}


def denormalize(frames: torch.Tensor) -> np.ndarray:
    """(T, 3, S, S) CLIP-normalised -> (T, S, S, 3) uint8 RGB."""
    m = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    s = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    x = (frames.detach().float().cpu() * s + m).clamp(0, 1) * 255
    return x.round().byte().permute(0, 2, 3, 1).numpy()


def heatmap_grid(frames: np.ndarray, attr: np.ndarray, title: list[str], cell: int = 160, columns: int = 8,
                 alpha: float = 0.5, smooth: bool = True) -> np.ndarray:
    """frames (T, S, S, 3) uint8 RGB + attr (T, S, S) -> one RGB image: title lines above a grid of
    frames with the attribution (smoothed unless ``smooth`` is False, scaled by the window's 99th
    percentile) as a JET heatmap."""
    t, s = attr.shape[:2]
    a = np.stack([cv2.GaussianBlur(x.astype(np.float32), (0, 0), max(0.5, s / 56)) if smooth else x.astype(np.float32)
                  for x in attr])
    top = float(np.percentile(a, 99)) or 1.0
    a = np.clip(a / top, 0, 1)
    cols = min(columns, t)
    rows = -(-t // cols)
    line = 20
    head = line * len(title) + 8
    img = np.full((head + rows * cell, max(cols * cell, 560), 3), 255, np.uint8)
    for k in range(t):
        f = cv2.resize(frames[k], (cell, cell), interpolation=cv2.INTER_LINEAR)
        h = cv2.resize(a[k], (cell, cell), interpolation=cv2.INTER_LINEAR)
        hm = cv2.cvtColor(cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        r, c = divmod(k, cols)
        img[head + r * cell:head + (r + 1) * cell, c * cell:(c + 1) * cell] = cv2.addWeighted(f, 1 - alpha, hm, alpha, 0)
    for i, text in enumerate(title):
        cv2.putText(img, text, (6, line * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def write_png(path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_write(path) as f:
        f.write(buf.tobytes())
