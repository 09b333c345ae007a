"""Clip aggregation, class mapping and scoring of static baselines, on hand-computed examples."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from finecliper.baselines.base import (FER2013_TO_CANONICAL, NO_PREDICTION, FaceCropConfig, aggregate_clip,
                                       crop_boxes, crop_faces, extended_confusion, fold_confusion, map_to_dataset,
                                       predict_labels, score_clips, unpredictable_classes)
from finecliper.baselines.evaluate import side_by_side, write_baseline_report
from finecliper.data import labels as L
from finecliper.eval.metrics import per_class_recall, uar, war

FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def onehot(name: str, p: float = 0.9) -> list[float]:
    row = [(1 - p) / 6] * 7
    row[FER.index(name)] = p
    return row


NAN = [np.nan] * 7


def test_aggregate_mean_ignores_invalid_frames_even_nan():
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [np.nan, np.nan], [1.0, 0.0]])
    out = aggregate_clip(probs, np.array([True, True, False, False]), "mean")
    np.testing.assert_allclose(out, [0.4, 0.6])


def test_aggregate_vote_counts_argmax_of_valid_frames_and_ties_go_to_lower_index():
    probs = np.array([[0.1, 0.5, 0.4], [0.1, 0.2, 0.7], [0.9, 0.05, 0.05], [0.0, 0.1, 0.9]])
    np.testing.assert_allclose(aggregate_clip(probs, np.array([1, 1, 0, 1], bool), "vote"), [0, 1 / 3, 2 / 3])
    tie = aggregate_clip(probs[:2], None, "vote")
    np.testing.assert_allclose(tie, [0, 0.5, 0.5])
    assert predict_labels(tie[None])[0] == 1


def test_aggregate_no_valid_frame_is_no_prediction_or_uniform():
    probs = np.full((3, 4), np.nan)
    none = aggregate_clip(probs, np.zeros(3, bool))
    assert np.isnan(none).all() and none.shape == (4,)
    assert predict_labels(none[None])[0] == NO_PREDICTION
    np.testing.assert_allclose(aggregate_clip(probs, np.zeros(3, bool), empty="uniform"), [0.25] * 4)


def test_aggregate_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        aggregate_clip(np.ones((2, 3)) / 3, mode="max")
    with pytest.raises(ValueError, match="valid"):
        aggregate_clip(np.ones((2, 3)) / 3, np.ones(3, bool))
    with pytest.raises(ValueError, match="NaN"):
        aggregate_clip(np.array([[np.nan, 1.0]]), np.array([True]))


def test_map_fer_onto_dfew_reorders_by_name():
    p = np.array([0.01, 0.02, 0.03, 0.5, 0.1, 0.04, 0.3])   # angry disgust fear happy sad surprise neutral
    out = map_to_dataset(p, FER, FER2013_TO_CANONICAL, L.classes("dfew"))
    # DFEW order: happiness sadness neutral anger surprise disgust fear
    np.testing.assert_allclose(out, [0.5, 0.1, 0.3, 0.01, 0.04, 0.02, 0.03])
    assert unpredictable_classes(FER, FER2013_TO_CANONICAL, L.classes("dfew")) == []


def test_map_onto_mafw_gives_zero_to_unpredictable_classes():
    p = np.full(7, 1 / 7)
    out = map_to_dataset(p, FER, FER2013_TO_CANONICAL, L.classes("mafw"))
    np.testing.assert_allclose(out[:7], 1 / 7)
    np.testing.assert_array_equal(out[7:], 0.0)
    assert unpredictable_classes(FER, FER2013_TO_CANONICAL, L.classes("mafw")) == [
        "contempt", "anxiety", "helplessness", "disappointment"]


def test_map_sums_shared_targets_and_drops_classes_the_dataset_lacks():
    names = ("joy", "happy", "contempt", "sad")
    mapping = {"joy": "happiness", "happy": "happy", "contempt": "contempt", "sad": "sadness"}
    out = map_to_dataset(np.array([[0.1, 0.2, 0.6, 0.1]]), names, mapping, L.classes("dfew"))
    np.testing.assert_allclose(out, [[0.3, 0.1, 0, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="no entry"):
        map_to_dataset(np.ones(4) / 4, names, {"joy": "happiness"}, L.classes("dfew"))
    with pytest.raises(L.LabelError):
        map_to_dataset(np.ones(4) / 4, names, {**mapping, "sad": "gloomy"}, L.classes("dfew"))


# A MAFW example worked by hand. Frames per clip are (T, 7) over fer's classes; valid masks beside them.
MAFW_CLIPS = [
    # true label,      frames,                                                       valid
    ("happiness",      [onehot("happy"), NAN, onehot("happy", 0.6)],                 [1, 0, 1]),
    ("happiness",      [onehot("happy")],                                            [1]),
    # mean: sad 0.4 < neutral 0.6 -> miss; vote: 1-1 tie -> sadness (lower MAFW id than neutral) -> hit
    ("sadness",        [[0, 0, 0, 0, 0.6, 0, 0.4], [0, 0, 0, 0, 0.2, 0, 0.8]],       [1, 1]),
    ("contempt",       [onehot("angry")],                                            [1]),   # unpredictable
    ("anger",          [NAN, NAN],                                                   [0, 0]),  # no face
    ("anger",          [onehot("angry")],                                            [1]),
    ("neutral",        [onehot("neutral", 0.5)],                                     [1]),
]


def run_example(mode: str):
    classes = L.classes("mafw")
    probs = np.stack([map_to_dataset(aggregate_clip(np.array(f, float), np.array(v, bool), mode), FER,
                                     FER2013_TO_CANONICAL, classes) for _, f, v in MAFW_CLIPS])
    y_true = [classes.index(c) for c, _, _ in MAFW_CLIPS]
    return y_true, predict_labels(probs)


def test_hand_computed_uar_war_mean_mode():
    y_true, y_pred = run_example("mean")
    c = L.classes("mafw")
    assert y_pred.tolist() == [c.index("happiness")] * 2 + [c.index("neutral"), c.index("anger"), NO_PREDICTION,
                                                            c.index("anger"), c.index("neutral")]
    s = score_clips(y_true, y_pred, 11)
    # recall: happiness 2/2, sadness 0/1, contempt 0/1, anger 1/2, neutral 1/1 (other classes absent)
    assert s["uar"] == pytest.approx((1 + 0 + 0 + 0.5 + 1) / 5)
    assert s["war"] == pytest.approx(4 / 7)
    assert s["n"] == 7 and s["n_no_prediction"] == 1
    assert s["no_prediction_per_class"][c.index("anger")] == 1
    rec = s["per_class_recall"]
    assert rec[c.index("anger")] == 0.5 and rec[c.index("contempt")] == 0.0 and rec[c.index("fear")] is None


def test_hand_computed_uar_war_vote_mode():
    y_true, y_pred = run_example("vote")
    s = score_clips(y_true, y_pred, 11)
    assert s["uar"] == pytest.approx((1 + 1 + 0 + 0.5 + 1) / 5)
    assert s["war"] == pytest.approx(5 / 7)


def test_folded_confusion_keeps_recalls_exactly():
    y_true, y_pred = run_example("mean")
    ext = extended_confusion(y_true, y_pred, 11)
    cm = fold_confusion(ext)
    assert cm.shape == (11, 11) and cm.sum() == 7
    assert uar(cm) == pytest.approx(uar(ext)) and war(cm) == pytest.approx(war(ext))
    np.testing.assert_array_equal(per_class_recall(cm), per_class_recall(ext)[:11])


def test_baseline_report_counts_no_prediction_as_miss(tmp_path):
    y_true, y_pred = run_example("mean")
    s = write_baseline_report(tmp_path, "test", y_true, y_pred, "mafw", extra={"fold": 1})
    assert s["uar"] == pytest.approx(0.5) and s["war"] == pytest.approx(4 / 7) and s["n_no_prediction"] == 1
    assert json.loads((tmp_path / "test_summary.json").read_text())["uar"] == pytest.approx(0.5)
    rows = list(csv.reader((tmp_path / "test_confusion.csv").open()))
    assert rows[0][-1] == "no prediction"
    anger = next(r for r in rows if r[0] == "anger")
    assert anger[1 + L.classes("mafw").index("anger")] == "1" and anger[-1] == "1"
    table = list(csv.reader((tmp_path / "test_per_class.csv").open()))
    row = dict(zip(table[0], table[1]))
    assert row["Ang."] == "50.00" and row["Con."] == "0.00" and row["Fea."] == "-" and row["UAR"] == "50.00"
    assert (tmp_path / "test_confusion.png").stat().st_size > 0


def test_crop_boxes_hand_computed():
    c, s = crop_boxes(np.array([[10, 20, 50, 100]]), FaceCropConfig(margin=0.25, shift=-0.1, size=64))
    # box side 80 -> crop side 80 * 1.5 = 120; centre (30, 60 - 8)
    np.testing.assert_allclose(c, [[30, 52]])
    np.testing.assert_allclose(s, [120])


def test_crop_faces_maps_box_onto_crop_and_leaves_invalid_black():
    frame = np.zeros((1, 100, 100, 3), np.uint8)
    frame[0, 40:60, 40:60] = 255                      # white square = the box
    crops = crop_faces(np.repeat(frame, 2, 0), np.array([[39.5, 39.5, 59.5, 59.5]] * 2),
                       FaceCropConfig(margin=0.0, shift=0.0, size=20), valid=np.array([True, False]))
    assert crops.shape == (2, 20, 20, 3)
    assert crops[0].min() == 255 and crops[1].max() == 0


def test_side_by_side_same_clips_and_notes():
    a = {"dataset": "dfew", "n": 10, "uar": 0.5, "war": 0.6,
         "per_class_recall": {"happiness": 1.0, "sadness": 0.25, "neutral": None, "anger": 0.5, "surprise": 0.0,
                              "disgust": 0.0, "fear": 0.75}}
    b = {"dataset": "dfew", "n": 10, "uar": 0.3, "war": 0.4, "per_class_recall": [0.5, 0, None, 0, 0, 0, 0.1],
         "n_no_prediction": 2}
    md = side_by_side({"finecliper": a, "fer": b})
    lines = md.splitlines()
    assert lines[0] == "| Method | Hap. | Sad. | Neu. | Ang. | Sur. | Dis. | Fea. | UAR | WAR | clips |"
    assert lines[2] == "| finecliper | 100.00 | 25.00 | - | 50.00 | 0.00 | 0.00 | 75.00 | 50.00 | 60.00 | 10 |"
    assert lines[3].startswith("| fer | 50.00 | 0.00 | - |") and "| 30.00 | 40.00 | 10 |" in lines[3]
    assert "fer: 2 clips without a detected face" in md
    folds = {"dataset": "dfew", "uar": {"mean": 0.5, "std": 0.01}, "war": {"mean": 0.6, "std": 0.02}}
    assert "50.00 ± 1.00" in side_by_side({"cv": folds})
    with pytest.raises(ValueError, match="same clips"):
        side_by_side({"a": a, "b": {**b, "n": 11}})
    with pytest.raises(ValueError, match="datasets"):
        side_by_side({"a": a, "b": {**b, "dataset": "mafw"}})
