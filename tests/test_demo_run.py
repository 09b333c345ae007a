"""`finecliper demo --quick`: every stage runs, the report is written, and held-out identities score well above chance."""
import contextlib
import json
import os
import re

import pytest

import browser  # tests/browser.py: the report laid out by chromium

from finecliper.cli.main import main
from finecliper.demo.run import MARKER, DemoError, demo_config, prepare_out_dir


def test_quick_preset_and_overrides():
    cfg = demo_config(True, ["epochs=3"], out="x")
    assert cfg.quick and cfg.identities == 16 and cfg.epochs == 3 and cfg.out == "x"
    assert demo_config().identities == 80 and not demo_config().quick


def test_refuses_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DemoError, match="not written by `finecliper demo`"):
        prepare_out_dir(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    own = tmp_path / "demo"
    (own / "run").mkdir(parents=True)
    (own / "run" / "old.txt").write_text("x")
    (own / "notes.txt").write_text("mine")
    (own / MARKER).write_text("{}")
    prepare_out_dir(own)  # the demo's own stage folders go, anything else stays
    assert not (own / "run").exists() and (own / "notes.txt").is_file()


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """One `finecliper demo --quick` run: its folder, and what it printed (file descriptors: C++ log lines land there)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    capture = tmp_path_factory.mktemp("demo-output") / "printed.txt"
    with open(capture, "w+") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        saved = os.dup(1), os.dup(2)
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            code = main(["demo", "--out", str(out), "--quick"])
        finally:
            f.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    return out, code, capture.read_text()


@pytest.mark.slow
def test_quick_demo_learns_expressions_of_unseen_identities(quick_demo):
    out, code, printed = quick_demo
    assert code == 0, printed
    assert "SYNTHETIC" in printed and "UAR" in printed and "WAR" in printed and "PRE-TRAINED HERE" in printed
    noise = [line for line in printed.splitlines()
             if re.search(r"XNNPACK|TensorFlow|absl|^(INFO|WARNING|ERROR):|^[WIEF]\d{4} |Warning:", line)]
    assert noise == [], noise   # a quiet terminal: our lines only

    s = json.loads((out / "demo_summary.json").read_text())
    info = json.loads((out / "data" / "demo_dataset.json").read_text())
    train_ids, test_ids = set(info["identities"]["train"]), set(info["identities"]["test"])
    assert len(test_ids) == 4 and not train_ids & test_ids
    assert s["n_test"] == 28 and set(s["held_out_identities"]) == test_ids
    # chance is 1/7 = 0.143 on the 28 clips of 4 faces the model never saw
    assert s["uar"] >= 0.35, f"held-out UAR {s['uar']:.3f} not well above chance"
    # every branch on its own is above chance on those faces (the full demo: at least twice chance)
    assert set(s["modality_war"]) == {"video", "parsing", "landmarks", "description"}
    for modality, w in s["modality_war"].items():
        assert w > 1 / 7, f"{modality} alone: held-out WAR {w:.3f} is not above chance"
    preds = json.loads((out / "eval" / "predictions.json").read_text())
    assert len(preds["clip_ids"]) == 28
    clip_identity = {c["clip_id"]: c["identity"] for c in info["clips"]}
    assert {clip_identity[c] for c in preds["clip_ids"]} == test_ids  # scored on held-out identities only
    # the backbone was pre-trained on the training faces only, without labels, then frozen
    pre = json.loads((out / "backbones" / "pretrain.json").read_text())
    assert pre["identities"] == len(train_ids) and pre["losses"][-1] < pre["losses"][0]
    # predict on a held-out clip written as a video: a face track and a label (the first such clip of the class)
    pred = json.loads((out / "predict" / "prediction.json").read_text())
    assert pred["label"] in info["classes"] and pred["identity"] in test_ids and (out / "predict" / "overlay.mp4").is_file()
    stages = [st["name"] for st in s["stages"]]
    assert stages[:7] == ["generate", "prepare", "extract", "describe", "pretrain", "train", "evaluate"]
    assert stages[-1] == "report"


@pytest.mark.slow
def test_quick_demo_report_says_what_was_done(quick_demo):
    out, _, _ = quick_demo
    s = json.loads((out / "demo_summary.json").read_text())
    report = out / "report"
    md = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    assert "synthetic task on a tiny backbone" in md and "pre-trained here" in md and "contrastive pre-training" in md
    assert "<table>" in html and "confusion.png" in html and "<pre>|" not in html
    for name in ("confusion.png", "curves.png", "pretrain_loss.png"):
        assert (report / name).stat().st_size > 1000
    examples = sorted(report.glob("example_*.png"))
    assert len(examples) == 2 and all(e.name in md for e in examples)
    assert f"{100 * s['uar']:.2f}%" in md
    for modality, w in s["modality_war"].items():
        assert f"| {modality} | {100 * w:.2f} |" in md  # each branch alone, in the report's table


@pytest.mark.slow
@pytest.mark.skipif(browser.chromium() is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 700])
def test_quick_demo_report_reads_well_in_a_browser(quick_demo, width, tmp_path):
    out, _, _ = quick_demo
    page = browser.layout(out / "report" / "report.html", width)
    assert page["document_width"] <= page["window_width"], "the page needs a horizontal scroll"
    assert page["pre_tables"] == 0, "a table is shown as preformatted text"
    assert page["tables"] and all(t["right"] <= page["window_width"] for t in page["tables"])
    assert page["images"] and all(i["loaded"] for i in page["images"]), [i["src"] for i in page["images"]]
    assert all(i["right"] <= page["window_width"] for i in page["images"])
    captions = page["captions"]
    assert any("Confusion matrix of FineCLIPER*†" in c for c in captions), captions
    assert all(p["font_px"] >= 12 for p in page["paragraphs"]), "text too small to read"
    shot = browser.screenshot(out / "report" / "report.html", tmp_path / f"report_{width}.png", width)
    assert shot.stat().st_size > 10_000


@pytest.mark.skipif(browser.chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_level_table_fits_a_narrow_window(tmp_path):
    from finecliper.demo.report import level_blocks, render_html

    everything = {"video": 0.3214, "parsing": 0.4286, "landmarks": 0.3857, "description": 0.8214}
    rows = [{"label": label, "modalities": list(mw), "trainable": 51_872, "uar": 0.7286, "war": 0.7286, "modality_war": mw}
            for label, mw in [("Low-level Only", {"video": 0.2929}), ("Middle-level Only", {"parsing": 0.3857,
                              "landmarks": 0.4071}), ("High-level Only", {"description": 0.8}),
                              ("Low-Middle-High (Ours)", everything)]]
    page = tmp_path / "levels.html"
    page.write_text(render_html(level_blocks(rows), "levels"))
    layout = browser.layout(page, 700)
    (table,) = layout["tables"]
    assert table["rows"] == 5 and table["columns"] == 8 and table["right"] <= layout["window_width"]
    assert layout["document_width"] <= layout["window_width"]


def test_the_level_table_says_when_one_level_beats_all_together():
    from finecliper.demo.report import level_blocks

    def rows(high_war):
        return [{"label": "High-level Only", "modalities": ["description"], "trainable": 1, "uar": high_war,
                 "war": high_war, "modality_war": {"description": high_war}},
                {"label": "Low-Middle-High (Ours)", "modalities": ["video", "description"], "trainable": 2, "uar": 0.7,
                 "war": 0.7, "modality_war": {"video": 0.3, "description": 0.7}}]

    text = level_blocks(rows(0.8))[1][1]
    assert "**High-level Only** (80.0%) beats all levels together (70.0%)" in text and "describer" in text
    assert "beats" not in level_blocks(rows(0.6))[1][1]
