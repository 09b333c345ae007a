"""Positive/negative scoring, adaptive fusion weights and the weighted loss (paper Eqs. 8–11).

Pure functions of tensors, so that each step can be checked against hand-computed values.
Resolutions of the paper's lost equations follow reference §4.4–4.5 and §10.1, §10.9–10.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def pn_scores(features: torch.Tensor, text_pos: torch.Tensor, text_neg: torch.Tensor | None, lam: float = 1.0) -> torch.Tensor:
    """``S[b, c] = cos(F_b, T_p^c) - lam * cos(F_b, T_n^c)``; ``cos(F_b, T_p^c)`` without negatives (``text_neg`` None).

    features: (B, E); text_pos, text_neg: (K, E); all L2-normalised. Returns (B, K).
    """
    pos = features @ text_pos.t()
    return pos if text_neg is None else pos - lam * (features @ text_neg.t())


def fusion_weights(scores: torch.Tensor, available: torch.Tensor | None = None, mode: str = "max_norm",
                   eps: float = 1e-6, tau: float = 1.0, floor: float = 0.0, fixed_index: int = 0,
                   fixed_weight: float = 0.5) -> torch.Tensor:
    """Per-sample modality weights from each modality's best class score (Eq. 9), without gradient.

    scores: (M, B, K); available: (M, B) bool, False where a modality has no usable input (e.g. no face
    in any frame) — such a modality gets weight 0. Returns (B, M), rows summing to 1 (to 0 for a sample with
    no available modality, which then adds nothing to the loss).
    ``max_norm``: ``g = clamp(max_c S, eps)``, ``w = g / sum_m g``. ``softmax``: ``softmax_m(g / tau)``.
    ``fixed`` (appendix Fig. 8): modality ``fixed_index`` gets ``fixed_weight``, the other available
    modalities share the rest evenly (it gets 1 when none of them is available); scores are not used.
    ``floor`` > 0 mixes in a uniform share, ``w = (1 - n*floor) w + floor`` over the n available modalities,
    so that a branch whose scores all start negative still gets gradient (max_norm gives it ~0 weight).
    """
    g = scores.detach().amax(dim=-1).t()  # (B, M)
    if available is None:
        available = torch.ones_like(g, dtype=torch.bool)
    else:
        available = available.t().to(torch.bool)
    if mode == "max_norm":
        g = g.clamp_min(eps) * available
        w = g / g.sum(dim=1, keepdim=True).clamp_min(eps)
    elif mode == "softmax":
        w = torch.softmax((g / tau).masked_fill(~available, float("-inf")), dim=1).nan_to_num(0.0)  # none: all -inf
    elif mode == "fixed":
        w = fixed_fusion_weights(available, fixed_index, fixed_weight).to(g.dtype)
    else:
        raise ValueError(f"unknown fusion mode {mode!r} (max_norm | softmax | fixed)")
    if floor > 0:
        n = available.sum(dim=1, keepdim=True)
        w = ((1 - n * floor) * w + floor) * available
    return w


def fixed_fusion_weights(available: torch.Tensor, index: int, weight: float) -> torch.Tensor:
    """available: (B, M) bool -> (B, M): ``weight`` at ``index``, ``1 - weight`` split evenly over the other
    available modalities (all of it at ``index`` when there is none)."""
    others = available.clone()
    others[:, index] = False
    n = others.sum(dim=1, keepdim=True)  # (B, 1)
    w = others * ((1 - weight) / n.clamp_min(1))
    w[:, index] = torch.where(n[:, 0] > 0, torch.full_like(n[:, 0], weight, dtype=w.dtype), torch.ones_like(w[:, index]))
    return w


def fuse(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Eq. 10: ``F = normalize(sum_m w_m F_m)``. features: (M, B, E) normalised; weights: (B, M)."""
    fused = torch.einsum("mbe,bm->be", features, weights)
    return F.normalize(fused, dim=-1)


def weighted_cross_entropy(scores: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """Eq. 11: ``(1/B) sum_b sum_m w_m[b] CE(S_m[b] / tau, y_b)``. scores: (M, B, K); weights: (B, M)."""
    m, b, k = scores.shape
    ce = F.cross_entropy((scores / tau).reshape(m * b, k), labels.repeat(m), reduction="none").view(m, b)
    return (ce * weights.t()).sum(dim=0).mean()


def contrastive_loss(video: torch.Tensor, text: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE between paired, normalised (B, E) video and caption features (zero-shot training)."""
    logits = video @ text.t() / tau
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
