import csv
import json

import numpy as np
from PIL import Image

from finecliper.eval import report as R

CM7 = np.array([[8, 1, 1, 0, 0, 0, 0],
                [0, 5, 5, 0, 0, 0, 0],
                [0, 0, 10, 0, 0, 0, 0],
                [1, 0, 0, 3, 0, 0, 0],
                [0, 0, 0, 0, 2, 0, 0],
                [0, 0, 1, 0, 0, 0, 0],
                [0, 0, 0, 0, 1, 0, 1]])


def test_confusion_csv_and_png(tmp_path):
    names = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    p = R.write_confusion_csv(tmp_path / "cm.csv", CM7, names)
    rows = list(csv.reader(p.open()))
    assert rows[0] == ["true\\pred", *names] and rows[2] == ["sadness", "0", "5", "5", "0", "0", "0", "0"]
    png = R.plot_confusion(tmp_path / "cm.png", CM7, names, title="fold 1")
    im = Image.open(png)
    assert im.format == "PNG" and im.size[0] > 200
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp files left


def test_table2_layout(tmp_path):
    header, rows = R.per_class_rows({"FineCLIPER": CM7}, "dfew")
    assert header == ["Method", "Hap.", "Sad.", "Neu.", "Ang.", "Sur.", "Dis.", "Fea.", "UAR", "WAR"]
    # recalls 80, 50, 100, 75, 100, 0, 50 -> UAR 65.0; WAR 29/39 = 74.36
    assert rows[0] == ["FineCLIPER", 80.0, 50.0, 100.0, 75.0, 100.0, 0.0, 50.0, 65.0, 74.36]
    csv_p, md_p = R.write_per_class_table(tmp_path / "table2", {"FineCLIPER": CM7}, "dfew")
    assert csv_p.read_text().splitlines()[1] == "FineCLIPER,80.00,50.00,100.00,75.00,100.00,0.00,50.00,65.00,74.36"
    md = md_p.read_text().splitlines()
    assert md[0].startswith("| Method | Hap.") and md[2].endswith("| 65.00 | 74.36 |")
    mafw_header, mafw_rows = R.per_class_rows({"m": np.eye(11, dtype=int) + np.diag([0, 0, -1] + [0] * 8)}, "mafw")
    assert mafw_header[8:12] == ["Con.", "Anx.", "Hel.", "Disa."] and mafw_rows[0][3] == "-"  # no neutral clip


def test_fold_report_and_learning_curve(tmp_path):
    s = R.write_fold_report(tmp_path, "fold1_best", CM7, "dfew", extra={"epoch": 12})
    assert s["war"] == 29 / 39 and s["epoch"] == 12
    data = json.loads((tmp_path / "fold1_best_summary.json").read_text())
    assert data["per_class_recall"]["disgust"] == 0.0 and data["confusion"][0][0] == 8
    for suffix in ("_confusion.csv", "_confusion.png", "_per_class.csv", "_per_class.md"):
        assert (tmp_path / f"fold1_best{suffix}").is_file()
    hist = [{"epoch": e, "train_loss": 2.0 / (e + 1), "test_uar": 0.1 * e, "test_war": 0.12 * e} for e in range(4)]
    png = R.plot_learning_curve(tmp_path / "curve.png", hist, title="run")
    assert Image.open(png).format == "PNG"


def test_learning_curves_put_each_unit_on_its_own_axis(tmp_path):
    panels = {k: R.curve_panel(k) for k in ("train_loss", "val_loss", "test_uar", "test_war", "lr", "steps", "seconds")}
    assert panels["train_loss"] == panels["val_loss"] == "loss" and panels["test_uar"] == panels["test_war"]
    assert len({panels["test_uar"], panels["lr"], panels["steps"], panels["seconds"], "loss"}) == 5  # seconds never share
    hist = [{"epoch": e, "train_loss": 1.0 / e, "test_uar": 0.1 * e, "test_war": 0.1 * e, "lr": 0.01 / e, "steps": 11,
             "seconds": 1.5} for e in range(1, 4)]
    wide = Image.open(R.plot_learning_curve(tmp_path / "c.png", hist))  # 5 panels: two rows of three
    one = Image.open(R.plot_learning_curve(tmp_path / "d.png", [{k: h[k] for k in ("epoch", "train_loss")} for h in hist]))
    assert wide.size[0] > 2 * one.size[0] and wide.size[1] > 1.5 * one.size[1]


def test_class_similarity_is_the_per_class_mean_cosine_to_that_class_prompts(tmp_path):
    # 2-d unit vectors: class 0 prompts along x (pos) and -x (neg), class 1 along y (pos) and -y (neg)
    tp = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    tn = -tp
    s = np.sqrt(0.5)
    feats = np.array([[1.0, 0.0], [s, s],      # class 0: cos to x = 1 and 0.7071 -> mean 0.8536
                      [0.0, 1.0],               # class 1: cos to y = 1
                      [1.0, 0.0]])              # class 0 again: 1 -> class 0 mean over 3 clips
    labels = np.array([0, 0, 1, 0])
    sim = R.class_similarity(feats, labels, tp, tn)
    assert np.allclose(sim["pos"][:2], [(1 + s + 1) / 3, 1.0]) and np.allclose(sim["neg"][:2], [-(1 + s + 1) / 3, -1.0])
    assert np.isnan(sim["pos"][2]) and list(sim["n"]) == [3, 1, 0]  # no clip of class 2
    no_neg = R.class_similarity(feats, labels, tp, None)
    assert np.all(np.isnan(no_neg["neg"])) and np.allclose(no_neg["pos"][:2], sim["pos"][:2])
    csv_path, png = R.write_class_similarity(tmp_path / "sim", sim, ["a", "b", "c"], title="fold 1")
    rows = list(csv.reader(csv_path.open()))
    assert rows[0] == ["class", "clips", "cos_positive", "cos_negative"]
    assert rows[1][:3] == ["a", "3", f"{(2 + s) / 3:.5f}"] and rows[3][2:] == ["", ""]
    assert Image.open(png).format == "PNG"


def test_each_branch_war_joins_the_scores_panel():
    from finecliper.train.loop import curve_point

    point = curve_point({"epoch": 2, "train_loss": 1.0, "test_war": 0.5, "modality_war": {"video": 0.3, "parsing": 0.4},
                         "mean_weights": {"video": 0.5}, "note": "x"})
    assert point == {"epoch": 2, "train_loss": 1.0, "test_war": 0.5, "video_war": 0.3, "parsing_war": 0.4}
    assert {R.curve_panel(k) for k in ("test_war", "video_war", "parsing_war")} == {"scores (%)"}
