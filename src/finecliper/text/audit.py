"""Leakage audit: how well does a text-only classifier predict the label from the descriptions?

TF-IDF (word 1-2 grams) + logistic regression (one-vs-rest, class-balanced), stratified k-fold; the score is UAR
(mean per-class recall, = sklearn's balanced accuracy) against chance 1/K. A label-free, well refined
description set should sit near chance plus whatever the *facial movements* legitimately reveal; a
large gap (e.g. label-conditioned descriptions) means the descriptions carry the label.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


@dataclass
class AuditResult:
    n: int
    n_classes: int
    folds: int
    uar_mean: float
    uar_std: float
    fold_uars: list[float]
    chance: float
    shuffled_uar: float | None = None  # same pipeline on permuted labels: the empirical floor

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        s = (f"text-only label prediction over {self.n} clips, {self.n_classes} classes, {self.folds}-fold CV: "
             f"UAR {100 * self.uar_mean:.2f} ± {100 * self.uar_std:.2f} % vs chance {100 * self.chance:.2f} %")
        if self.shuffled_uar is not None:
            s += f" (shuffled labels: {100 * self.shuffled_uar:.2f} %)"
        return s


def _cv_uar(texts: list[str], y: np.ndarray, folds: int, seed: int) -> list[float]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline

    out = []
    for tr, te in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(texts, y):
        # one-vs-rest liblinear: same UAR as multinomial lbfgs within ~1 point here, 30x faster on sparse text
        clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True),
                            OneVsRestClassifier(LogisticRegression(solver="liblinear", class_weight="balanced")))
        clf.fit([texts[i] for i in tr], y[tr])
        out.append(float(balanced_accuracy_score(y[te], clf.predict([texts[i] for i in te]))))
    return out


def leakage_audit(texts: Sequence[str], labels: Sequence, folds: int = 5, seed: int = 0,
                  shuffled: bool = True) -> AuditResult:
    """Cross-validated UAR of predicting ``labels`` from ``texts``."""
    texts = [t or "" for t in texts]
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise ValueError("the audit needs at least two classes")
    smallest = int(np.bincount(y).min())
    if smallest < folds:
        raise ValueError(f"the rarest class has {smallest} clips, fewer than {folds} folds; lower folds")
    uars = _cv_uar(texts, y, folds, seed)
    floor = None
    if shuffled:
        floor = float(np.mean(_cv_uar(texts, np.random.default_rng(seed).permutation(y), folds, seed)))
    return AuditResult(n=len(texts), n_classes=len(classes), folds=folds, uar_mean=float(np.mean(uars)),
                       uar_std=float(np.std(uars)), fold_uars=uars, chance=1.0 / len(classes), shuffled_uar=floor)


def audit_cache(cache_path: str | Path, labels: Mapping[str, object], folds: int = 5, seed: int = 0) -> AuditResult:
    """Audit a description cache against {clip_id: label} (clips without a label are left out)."""
    from finecliper.text.desc_cache import load_descriptions

    desc = load_descriptions(cache_path)
    ids = sorted(k for k in desc if k in labels)
    if not ids:
        raise ValueError(f"{cache_path}: none of its clips has a label in the given split")
    return leakage_audit([desc[k] for k in ids], [labels[k] for k in ids], folds=folds, seed=seed)
