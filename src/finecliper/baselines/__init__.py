"""Static per-frame expression classifiers evaluated as clip-level peers of finecliper.

``make_baseline("fer")`` -> a ``FrameClassifier``; ``finecliper.baselines.evaluate.evaluate_baseline``
scores it on a DFER test split with finecliper's own sampler, metrics and reports.
"""
from __future__ import annotations

import importlib
from typing import Any

# name -> "module:class"; imported on demand (each backend has its own optional dependencies).
BASELINES: dict[str, str] = {"fer": "finecliper.baselines.fer_tflite:FerClassifier"}


def make_baseline(name: str, **kwargs: Any):
    """The baseline classifier called ``name`` (see ``BASELINES``)."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    module, cls = BASELINES[name].split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)
