"""AIM/Houlsby bottleneck adapter and stochastic depth."""
from __future__ import annotations

import torch
from torch import nn


class Adapter(nn.Module):
    """``Linear(D -> D*ratio) -> GELU -> Linear(-> D)``; the up projection starts at zero.

    With ``skip=True`` it returns ``x + up(act(down(x)))`` (identity at init), else only the branch
    (zero at init), so an adapted network starts exactly as the frozen one.
    """

    def __init__(self, dim: int, ratio: float = 0.25, skip: bool = True):
        super().__init__()
        hidden = int(dim * ratio)
        self.skip = skip
        self.D_fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.D_fc2 = nn.Linear(hidden, dim)
        nn.init.trunc_normal_(self.D_fc1.weight, std=0.02)
        nn.init.zeros_(self.D_fc1.bias)
        nn.init.zeros_(self.D_fc2.weight)
        nn.init.zeros_(self.D_fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.D_fc2(self.act(self.D_fc1(x)))
        return x + y if self.skip else y


def adapter_parameter_count(dim: int, ratio: float = 0.25) -> int:
    """Analytic size of one :class:`Adapter` (768 at 0.25 -> 295,872)."""
    h = int(dim * ratio)
    return dim * h + h + h * dim + dim


class DropPath(nn.Module):
    """Drop whole residual branches per sample while training (stochastic depth)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep
