"""``finecliper ablate`` on a generated DFEW-layout dataset with a tiny CLIP: two rows end to end, the second
invocation skips the finished row, the table is written in the paper's layout beside the paper's numbers."""
import csv
import json
import sys
from pathlib import Path

import pytest

from finecliper.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import dfew_with_tiny_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.image_size=32", "model.num_frames=2", "data.batch_size=7", "data.workers=0", "train.epochs=1",
        "train.optimizer=adamw", "train.lr=0.01", "train.threads=2", "train.log_every=0"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dfew")
    ann, data, ckpt = dfew_with_tiny_clip(root, 2, 1)
    return [f"model.clip={ckpt}", f"data.annotations={ann}", f"data.root={data}", *TINY]


def ablate(out, rows, overrides, *extra):
    return main(["ablate", "--table", "9", "--rows", rows, "--config", "dfew",
                 "--out", str(out), *extra, *overrides])


def test_two_rows_end_to_end_resume_after_one_and_the_table(dataset, tmp_path, capsys):
    out = tmp_path / "tab9"
    assert ablate(out, "s03", dataset) == 0
    first = out / "rows" / "s03"
    assert json.loads((first / "summary.json").read_text())["folds"] == [1]
    stamp = (first / "fold_1" / "last" / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()

    assert ablate(out, "s03,s05", dataset) == 0
    printed = capsys.readouterr().out
    assert "s03: finished earlier, skipped" in printed
    assert (first / "fold_1" / "last" / "model.safetensors").stat().st_mtime_ns == stamp  # not trained again
    assert json.loads((out / "rows" / "s05" / "summary.json").read_text())["folds"] == [1]
    # each row ran with its own adapter scale
    for row, s in (("s03", 0.3), ("s05", 0.5)):
        assert f"adapter_scale: {s}" in (out / "rows" / row / "fold_1" / "config.yaml").read_text()

    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["s"] for r in rows] == ["0.3", "0.5"]
    assert [r["UAR (paper)"] for r in rows] == ["62.51", "62.81"] and [r["WAR (paper)"] for r in rows] == ["72.68", "72.86"]
    for r in rows:
        assert r["UAR (ours, best)"] != "—" and 0 <= float(r["UAR (ours, last)"]) <= 100
        assert int(r["Trainable params"].replace(",", "")) > 0
    table = json.loads((out / "table.json").read_text())
    assert table["dataset"] == "dfew" and table["folds"] == [1]
    s05 = table["rows"][1]
    summary = json.loads((out / "rows" / "s05" / "summary.json").read_text())
    assert s05["ours"]["best"]["uar"]["mean"] == summary["best"]["uar"]["mean"]
    assert s05["paper"] == {"uar": 62.81, "war": 72.86, "source": "arXiv 2407.02157 (FineCLIPER, ACM MM'24)"}
    md = (out / "table.md").read_text()
    assert "| s | Trainable params |" in md and "copied, not reproduced" in md and "62.81" in md
    assert (out / "fig7_params_vs_uar.png").stat().st_size > 1000
    assert "s05" in (out / "ablate.log").read_text()


def test_a_row_cut_short_is_resumed_not_skipped(dataset, tmp_path, capsys):
    out = tmp_path / "tab9"
    two_epochs = [*dataset, "train.epochs=2"]
    assert ablate(out, "s07", [*two_epochs, "train.stop_after=1"]) == 0  # stops after epoch 1 of 2
    history = out / "rows" / "s07" / "fold_1" / "history.jsonl"
    assert len(history.read_text().splitlines()) == 1
    capsys.readouterr()
    assert ablate(out, "s07", two_epochs) == 0
    printed = capsys.readouterr()
    assert "finished earlier" not in printed.out and "resuming after epoch 1 of 2" in printed.err
    assert [json.loads(x)["epoch"] for x in history.read_text().splitlines()] == [1, 2]  # continued, not restarted
    assert json.loads((out / "table.json").read_text())["rows"][0]["finished"]


def test_dry_run_prints_rows_overrides_and_counts_and_trains_nothing(dataset, tmp_path, capsys):
    out = tmp_path / "dry"
    assert main(["ablate", "--table", "6", "--config", "dfew", "--out", str(out),
                 "--dry-run", "model.clip=null"]) == 0
    printed = capsys.readouterr().out
    assert "none+frozen" in printed and "model.text_supervision=none model.video_adapters=false" in printed
    assert "trainable 3,584" in printed and "trainable 13,826,304" in printed  # ViT-B/16 shape, 7 classes
    assert not out.exists()


@pytest.mark.parametrize("argv,message", [
    (["--table", "3"], "no ablation table '3'"),
    (["--table", "4", "--rows", "bogus"], "no row 'bogus'"),
    (["--table", "8", "--backbone", "ViT-L/14"], "not NAME=PATH"),
])
def test_bad_command_lines_are_one_line_errors(argv, message, capsys):
    assert main(["ablate", *argv, "--config", "dfew", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_row_on_a_backbone_without_its_checkpoint_stops_before_any_training(dataset, tmp_path, capsys):
    out = tmp_path / "tab8"
    assert main(["ablate", "--table", "8", "--rows", "vit_l14", "--config", "dfew",
                 "--out", str(out), *dataset]) == 2
    assert "--backbone ViT-L/14=PATH" in capsys.readouterr().err
    assert not (out / "rows").exists()


def test_list_shows_every_table(capsys):
    assert main(["ablate", "--list"]) == 0
    printed = capsys.readouterr().out
    for key in ("4", "5", "6", "7", "8", "9", "fig8"):
        assert f"\n{key}  " in "\n" + printed
