"""`finecliper demo --quick`: every stage runs, the report is written, and held-out identities score well above chance."""
import json
import re

import pytest

from finecliper.cli.main import main
from finecliper.demo.run import MARKER, DemoError, demo_config, prepare_out_dir


def test_quick_preset_and_overrides():
    cfg = demo_config(True, ["epochs=3"], out="x")
    assert cfg.quick and cfg.identities == 16 and cfg.epochs == 3 and cfg.out == "x"
    assert demo_config().identities == 40 and not demo_config().quick


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


@pytest.mark.slow
def test_quick_demo_learns_expressions_of_unseen_identities(tmp_path, capfd):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quick"]) == 0
    printed, err = capfd.readouterr()   # file descriptors: C++ log lines (LiteRT, absl) land there too
    assert "SYNTHETIC" in printed and "UAR" in printed and "WAR" in printed
    noise = [line for line in (printed + err).splitlines()
             if re.search(r"XNNPACK|TensorFlow|absl|^(INFO|WARNING|ERROR):|^[WIEF]\d{4} |Warning:", line)]
    assert noise == [], noise   # a quiet terminal: our lines only

    s = json.loads((out / "demo_summary.json").read_text())
    info = json.loads((out / "data" / "demo_dataset.json").read_text())
    train_ids, test_ids = set(info["identities"]["train"]), set(info["identities"]["test"])
    assert len(test_ids) == 4 and not train_ids & test_ids
    assert s["n_test"] == 28 and set(s["held_out_identities"]) == test_ids
    # chance is 1/7 = 0.143 on the 28 clips of 4 faces the model never saw
    assert s["uar"] >= 0.35, f"held-out UAR {s['uar']:.3f} not well above chance"
    preds = json.loads((out / "eval" / "predictions.json").read_text())
    assert len(preds["clip_ids"]) == 28
    clip_identity = {c["clip_id"]: c["identity"] for c in info["clips"]}
    assert {clip_identity[c] for c in preds["clip_ids"]} == test_ids  # scored on held-out identities only

    report = out / "report"
    md = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    assert "synthetic task on a small randomly initialised backbone" in md
    assert "<table>" in html and "confusion.png" in html
    for name in ("confusion.png", "curves.png"):
        assert (report / name).stat().st_size > 1000
    examples = sorted(report.glob("example_*.png"))
    assert len(examples) == 2 and all(e.name in md for e in examples)
    assert f"{100 * s['uar']:.2f}%" in md
    stages = [st["name"] for st in s["stages"]]
    assert stages[:7] == ["generate", "prepare", "extract", "describe", "backbones", "train", "evaluate"]
    assert stages[-1] == "report"
