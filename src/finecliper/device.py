"""Where a model runs and in which precision: one rule for training, evaluation and prediction."""
from __future__ import annotations

import contextlib
import re
from typing import Any

import torch

PRECISIONS = ("auto", "fp32", "bf16")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA when there is one, else CPU; ``cuda`` under torchrun -> this process's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    return device


def autocast(device: torch.device, precision: str):
    """bf16 autocast for ``bf16``, and for ``auto`` on CUDA; full precision otherwise."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a batch on ``device``; clip ids and other lists stay as they are."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
