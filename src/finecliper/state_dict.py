"""Comparing a checkpoint's tensors with what a model expects (shared by every strict loader)."""
from __future__ import annotations

from typing import Iterable, Mapping

import torch


def format_key_list(keys: Iterable[str], limit: int = 12) -> str:
    """Sorted, comma-separated, cut after ``limit`` (for error messages)."""
    keys = sorted(keys)
    more = f" … and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def key_problems(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> list[str]:
    """Missing, unexpected and mis-shaped keys of ``sd`` against ``expected``; empty when they fit."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shapes = [f"{k} {tuple(sd[k].shape)} (expected {tuple(expected[k].shape)})"
              for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {format_key_list(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {format_key_list(unexpected)}")
    if shapes:
        problems.append(f"wrong shapes ({len(shapes)}): {format_key_list(shapes)}")
    return problems
