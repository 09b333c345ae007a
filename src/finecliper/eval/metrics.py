"""DFER metrics in plain numpy (reference §5.7).

- WAR (weighted average recall) = overall accuracy = trace(CM) / sum(CM).
- UAR (unweighted average recall) = mean over classes of CM[c, c] / sum_j CM[c, j], taken over the
  classes that occur in y_true (rows with a non-zero sum). A class that is never the true label has
  no recall; it is left out rather than counted as 0 (sklearn's ``balanced_accuracy_score`` does the
  same). E.g. MAFW caption splits have no neutral clip, so their UAR is a 10-class mean.
- Folds (DFEW, MAFW): UAR and WAR per fold, then the arithmetic mean (and sample std) over folds;
  predictions are never pooled across folds.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """(K, K) int64; rows = true class, columns = predicted class."""
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(y_pred).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} entries but y_pred has {p.size}")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (not np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{name} must hold integer class ids, got dtype {a.dtype}")
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} holds ids outside 0..{num_classes - 1} ({a.min()}..{a.max()})")
    return np.bincount(t.astype(np.int64) * num_classes + p, minlength=num_classes * num_classes) \
        .reshape(num_classes, num_classes).astype(np.int64)


def _check_cm(cm: np.ndarray) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got {cm.shape}")
    if cm.sum() == 0:
        raise ValueError("confusion matrix is empty (no samples)")
    return cm


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """(K,) float64 recall per true class; NaN for classes with no true samples."""
    cm = _check_cm(cm).astype(np.float64)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / support, np.nan)


def uar(cm: np.ndarray) -> float:
    """Mean per-class recall over the classes present in y_true (rows with support > 0)."""
    return float(np.nanmean(per_class_recall(cm)))


def war(cm: np.ndarray) -> float:
    """Overall accuracy: trace / total."""
    cm = _check_cm(cm)
    return float(np.trace(cm) / cm.sum())


def evaluate_predictions(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict[str, Any]:
    """{'uar', 'war', 'per_class_recall' (list, NaN -> None), 'confusion' (K x K list), 'n'}."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    rec = per_class_recall(cm)
    return {"uar": uar(cm), "war": war(cm), "n": int(cm.sum()),
            "per_class_recall": [None if np.isnan(r) else float(r) for r in rec],
            "confusion": cm.tolist()}


def summarize_folds(folds: list[dict[str, Any]], keys: Sequence[str] = ("uar", "war")) -> dict[str, dict[str, Any]]:
    """Per-fold dicts with 'uar' and 'war' -> {key: {'mean', 'std', 'per_fold', 'n_folds'}}.

    ``std`` is the sample standard deviation (ddof=1; 0 for a single fold).
    """
    if not folds:
        raise ValueError("summarize_folds needs at least one fold result")
    out = {}
    for k in keys:
        missing = [i for i, f in enumerate(folds) if k not in f]
        if missing:
            raise KeyError(f"fold results {missing} lack {k!r}")
        v = np.array([float(f[k]) for f in folds])
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                  "per_fold": v.tolist(), "n_folds": int(v.size)}
    return out
