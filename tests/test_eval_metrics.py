import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.metrics import confusion_matrix as sk_cm

from finecliper.eval.metrics import (confusion_matrix, evaluate_predictions, per_class_recall, summarize_folds,
                                     uar, war)


def test_hand_computed_confusion_matrix():
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 2, 0, 1]
    cm = confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [1, 1, 3]]
    np.testing.assert_allclose(per_class_recall(cm), [2 / 3, 1 / 2, 3 / 5])
    assert war(cm) == pytest.approx(6 / 10)
    assert uar(cm) == pytest.approx((2 / 3 + 1 / 2 + 3 / 5) / 3)


def test_uar_skips_classes_absent_from_y_true():
    # class 1 never occurs as a true label (as neutral in MAFW caption splits)
    cm = confusion_matrix([0, 0, 2, 2], [0, 1, 2, 2], 3)
    assert np.isnan(per_class_recall(cm)[1])
    assert uar(cm) == pytest.approx((0.5 + 1.0) / 2)
    with pytest.warns(UserWarning):  # sklearn warns about the class only in y_pred, same value
        assert uar(cm) == pytest.approx(balanced_accuracy_score([0, 0, 2, 2], [0, 1, 2, 2]))


def test_matches_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    for k in (7, 11):
        t = rng.integers(0, k, 500)
        p = np.where(rng.random(500) < 0.6, t, rng.integers(0, k, 500))
        cm = confusion_matrix(t, p, k)
        np.testing.assert_array_equal(cm, sk_cm(t, p, labels=range(k)))
        assert uar(cm) == pytest.approx(balanced_accuracy_score(t, p))
        assert war(cm) == pytest.approx(accuracy_score(t, p))


def test_evaluate_predictions_dict():
    r = evaluate_predictions([0, 1, 1], [0, 1, 0], 3)
    assert r["n"] == 3 and r["war"] == pytest.approx(2 / 3) and r["uar"] == pytest.approx(0.75)
    assert r["per_class_recall"] == [1.0, 0.5, None] and r["confusion"][1] == [1, 1, 0]


def test_summarize_folds_mean_and_sample_std():
    s = summarize_folds([{"uar": 0.5, "war": 0.6}, {"uar": 0.7, "war": 0.8}, {"uar": 0.6, "war": 0.7}])
    assert s["uar"]["mean"] == pytest.approx(0.6) and s["war"]["mean"] == pytest.approx(0.7)
    assert s["uar"]["std"] == pytest.approx(0.1)  # sqrt((0.01 + 0.01 + 0) / 2)
    assert s["war"]["per_fold"] == [0.6, 0.8, 0.7] and s["war"]["n_folds"] == 3
    assert summarize_folds([{"uar": 0.4, "war": 0.5}])["uar"]["std"] == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="entries"):
        confusion_matrix([0, 1], [0], 3)
    with pytest.raises(ValueError, match="empty"):
        war(np.zeros((3, 3)))
    with pytest.raises(KeyError, match="war"):
        summarize_folds([{"uar": 0.1}])
