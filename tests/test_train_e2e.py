"""prepare -> train -> evaluate on a generated DFEW-layout dataset with a tiny CLIP checkpoint."""
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from finecliper.cli.main import main

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import dfew_with_tiny_clip, make_dfew_clips  # noqa: E402

TINY = ["data.image_size=32", "data.num_frames=4", "model.num_frames=4", "data.batch_size=8", "data.workers=0",
        "train.optimizer=adamw", "train.lr=0.01", "train.weight_decay=0.01", "train.warmup_epochs=0.5", "train.threads=2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dfew")
    ann, data, ckpt = dfew_with_tiny_clip(root, 6, 3)
    return root, ann, data, ckpt


def base_overrides(dataset, out, epochs):
    root, ann, data, ckpt = dataset
    return [f"model.clip={ckpt}", f"data.annotations={ann}", f"data.root={data}", f"out={out}",
            f"train.epochs={epochs}", *TINY]


def test_prepare_train_evaluate_writes_every_artefact(dataset, tmp_path):
    root, ann, data, ckpt = dataset
    man_dir = tmp_path / "prepared"
    assert main(["prepare", "--dataset", "dfew", "--annotations", str(ann), "--data-root", str(data),
                 "--variant", "clip_224x224", "--fold", "1", "--out", str(man_dir)]) == 0
    manifest = next(man_dir.glob("*.json"))
    out = tmp_path / "run"
    assert main(["train", *base_overrides(dataset, out, 2), f"data.manifest={manifest}"]) == 0
    fold = out / "fold_1"
    for name in ["train.log", "history.jsonl", "curves.png", "config.yaml", "summary.json",
                 "last/model.safetensors", "last/config.yaml", "last/backbones.json", "last/state.pt",
                 "best/model.safetensors", "last_confusion.csv", "last_confusion.png", "best_confusion.png",
                 "last_per_class.md", "best_per_class.csv", "last_summary.json", "predictions_best.json"]:
        assert (fold / name).is_file(), name
    history = [json.loads(line) for line in (fold / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["last"]["uar"]["n_folds"] == 1 and summary["best"]["war"]["per_fold"]
    assert json.loads((fold / "best_summary.json").read_text())["selection"].startswith("best-on-test")
    # evaluating the saved checkpoint reproduces the last epoch's test scores
    ev = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(fold / "last"), "--out", str(ev), *base_overrides(dataset, out, 2)]) == 0
    again = json.loads((ev / "test_summary.json").read_text())
    last = json.loads((fold / "last_summary.json").read_text())
    assert again["confusion"] == last["confusion"]


def test_training_learns_a_separable_task(dataset, tmp_path):
    from finecliper.config import load_config
    from finecliper.train.config import ExperimentConfig
    from finecliper.train.loop import train_folds

    cfg = load_config(ExperimentConfig, None, base_overrides(dataset, tmp_path / "run", 10))
    summary = train_folds(cfg, [1])
    assert summary["best"]["uar"]["mean"] >= 0.9
    assert summary["last"]["uar"]["mean"] >= 0.9


def test_resume_after_interruption_gives_the_same_model(dataset, tmp_path):
    from safetensors.torch import load_file

    from finecliper.config import load_config
    from finecliper.train.config import ExperimentConfig
    from finecliper.train.loop import train_folds

    train_folds(load_config(ExperimentConfig, None, base_overrides(dataset, tmp_path / "straight", 3)), [1])
    out = tmp_path / "interrupted"
    train_folds(load_config(ExperimentConfig, None, base_overrides(dataset, out, 3) + ["train.stop_after=2"]), [1])
    hist = [json.loads(line) for line in (out / "fold_1" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2]
    train_folds(load_config(ExperimentConfig, None, base_overrides(dataset, out, 3)), [1], resume=True)
    hist = [json.loads(line) for line in (out / "fold_1" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    a = load_file(str(tmp_path / "straight" / "fold_1" / "last" / "model.safetensors"))
    b = load_file(str(out / "fold_1" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-6, k


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc): torchrun starts each worker in a session of its own."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def run_with_timeout(cmd, env, timeout):
    """A command and the processes it starts (torchrun's workers), all killed if it runs past ``timeout``."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in children(p.pid) + [p.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"{' '.join(cmd[:6])} ... hung for {timeout} s (ranks waiting on a collective?)")
    return p.returncode, out, err


@pytest.mark.slow
def test_torchrun_two_cpu_processes_on_a_clip_count_that_does_not_split_evenly(dataset, tmp_path):
    """17 clips over 2 ranks: equal steps per rank (a rank short of one step would leave the other waiting in
    an all-reduce forever), and every test clip scored once, in dataset order."""
    ann, data = make_dfew_clips(tmp_path / "ds", 17, 17)
    out = tmp_path / "ddp"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    overrides = [x for x in base_overrides(dataset, out, 2) if not x.startswith(("data.annotations=", "data.root="))]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
           "-m", "finecliper.cli.main", "train", *overrides, f"data.annotations={ann}", f"data.root={data}",
           "train.threads=1"]
    rc, _, err = run_with_timeout(cmd, env, timeout=300)
    assert rc == 0, err[-3000:]
    preds = json.loads((out / "fold_1" / "predictions_last.json").read_text())
    assert preds["clip_ids"] == [f"{i:05d}" for i in range(18, 35)]  # the test split, in order, each once
    hist = [json.loads(line) for line in (out / "fold_1" / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [1, 2] and [h["steps"] for h in hist] == [2, 2]  # ceil(9 / 8) per rank
    assert json.loads((out / "summary.json").read_text())["last"]["uar"]["n_folds"] == 1
