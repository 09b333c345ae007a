"""Holding a frozen module owned elsewhere without registering it twice."""
from __future__ import annotations

from torch import nn


class FrozenRef:
    """A plain reference to a module that another module owns (and saves, moves, counts).

    Several encoders share one frozen CLIP tower; registering it in each would duplicate it in the
    state dict and in parameter counts. The owner (``FineCLIPER.clip``) moves it with ``.to()``.
    """

    __slots__ = ("module",)

    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self) -> nn.Module:
        return self.module
