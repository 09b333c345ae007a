"""The leakage audit separates descriptions that carry the label from ones that do not."""
import numpy as np
import pytest

from finecliper.text.audit import audit_cache, leakage_audit
from finecliper.text.desc_cache import DescriptionCache
from finecliper.text.refine import refine_description

CLASSES = ["anger", "sadness", "happiness", "fear"]
PHRASES = ["the brows rise", "the mouth opens", "the eyes narrow", "the jaw drops", "the lips press together",
           "the head turns left", "the cheeks rise", "the nose wrinkles"]


def corpus(n_per_class=30, seed=0, leak=True):
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for c in CLASSES:
        for _ in range(n_per_class):
            words = ". ".join(rng.choice(PHRASES, 3, replace=False)).capitalize() + "."
            adj = {"anger": "angry", "sadness": "sad", "happiness": "happy", "fear": "fearful"}[c]
            texts.append(f"{words} The person seems {adj}." if leak else words)
            labels.append(c)
    return texts, labels


def test_label_carrying_descriptions_score_far_above_chance():
    texts, labels = corpus(leak=True)
    r = leakage_audit(texts, labels, folds=5)
    assert r.n == 120 and r.n_classes == 4 and r.chance == 0.25 and len(r.fold_uars) == 5
    assert r.uar_mean > 0.95
    assert r.shuffled_uar < 0.45
    assert "UAR" in r.format() and "chance 25.00 %" in r.format()


def test_refinement_removes_the_leak():
    texts, labels = corpus(leak=True)
    refined = [refine_description(t).text for t in texts]
    assert all("seems" not in t for t in refined)
    r = leakage_audit(refined, labels, folds=5)
    assert r.uar_mean < 0.45  # label-independent phrases: about chance


def test_audit_input_errors():
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        leakage_audit(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="at least two classes"):
        leakage_audit(["a", "b"], ["x", "x"])
    with pytest.raises(ValueError, match="fewer than 5 folds"):
        leakage_audit(["a"] * 6, ["x"] * 3 + ["y"] * 3)


def test_audit_cache_uses_only_labelled_clips(tmp_path):
    texts, labels = corpus(n_per_class=10)
    path = tmp_path / "d.jsonl"
    c = DescriptionCache(path, {"dataset": "mafw", "backend": "captions", "model_hash": "m", "prompt_hash": None,
                                "refine_hash": None, "leaks_label": False})
    for i, t in enumerate(texts):
        c.append(f"{i:05d}", t, t)
    lab = {f"{i:05d}": y for i, y in enumerate(labels) if i % 10 != 0}  # 4 clips without a label
    r = audit_cache(path, lab, folds=3)
    assert r.n == 36 and r.uar_mean > 0.9
