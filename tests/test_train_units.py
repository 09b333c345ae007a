"""The loop's pieces on their own: accumulation and schedule, configs checked when loaded, RNG streams, no mutation."""
import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch

from finecliper.cli.main import main
from finecliper.config import ConfigError, load_config
from finecliper.device import resolve_device
from finecliper.train.config import ExperimentConfig, TrainConfig
from finecliper.train.loop import fold_config, make_schedule, steps_per_epoch, train_one_epoch
from finecliper.train.state import rng_state, set_rng_state


class Scalar(torch.nn.Module):
    """loss = w * x: the gradient of a batch is its x."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch):
        return SimpleNamespace(loss=self.w * batch["x"].sum())


def batches(n):
    return [{"x": torch.tensor([float(i + 1)]), "clip_id": [f"c{i}"]} for i in range(n)]


def test_ten_batches_accumulated_by_four_step_three_times_per_epoch_and_never_at_zero_lr():
    model = Scalar()
    tc = TrainConfig(epochs=3, grad_accum=4, lr=0.1, warmup_epochs=1.0, optimizer="sgd", momentum=0, weight_decay=0)
    opt = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=0)
    steps = steps_per_epoch(10, tc.grad_accum)
    sched = make_schedule(opt, tc, steps)
    stats = [train_one_epoch(model, batches(10), opt, sched, 10, tc.grad_accum, torch.device("cpu"), "fp32")
             for _ in range(tc.epochs)]
    assert steps == 3 and [s["steps"] for s in stats] == [3, 3, 3]
    assert sched.last_epoch == 9  # the scheduler stepped once per optimiser step: 9 of the 9 it plans
    assert stats[-1]["lr"] > 0  # the last step still learns (the schedule reaches 0 only after it)
    # warm-up over the 3 steps of epoch 1 (0, 1/3, 2/3), then cosine over steps 3..8 of 6
    expected = [2 / 3, 0.5 * (1 + math.cos(math.pi * 2 / 6)), 0.5 * (1 + math.cos(math.pi * 5 / 6))]
    assert [s["lr"] for s in stats] == pytest.approx([0.1 * e for e in expected])


def test_the_last_partial_group_is_divided_by_its_own_size():
    model = Scalar()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    flat = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    train_one_epoch(model, batches(10), opt, flat, 10, 4, torch.device("cpu"), "fp32")
    # groups (1..4), (5..8), (9, 10): each step moves w by the mean gradient of its group
    assert model.w.item() == pytest.approx(-(2.5 + 6.5 + 9.5))


def test_max_steps_per_epoch_limits_the_batches():
    model = Scalar()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    s = train_one_epoch(model, batches(10), opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0), 3, 2,
                        torch.device("cpu"), "fp32")
    assert s["steps"] == 2 and model.w.item() == pytest.approx(-(1.5 + 3.0))


def test_fold_config_leaves_the_given_config_alone():
    cfg = load_config(ExperimentConfig, None, ["data.dataset=mafw"])
    before = dataclasses.asdict(cfg)
    k = fold_config(cfg, 3)
    assert dataclasses.asdict(cfg) == before
    assert k.data.fold == 3 and len(k.model.classes) == 11 and cfg.model.classes == []


def test_num_frames_is_stated_once():
    cfg = load_config(ExperimentConfig, None, ["model.num_frames=8"])
    assert cfg.data.num_frames == 8  # the data follows the model
    load_config(ExperimentConfig, None, ["model.num_frames=8", "data.num_frames=8"]).check_frames()
    with pytest.raises(ConfigError, match="data.num_frames=4 but model.num_frames=8"):
        load_config(ExperimentConfig, None, ["model.num_frames=8", "data.num_frames=4"]).check_frames()


@pytest.mark.parametrize("override, message", [
    ("train.epochs=-1", "train.epochs must be at least 1, got -1"),
    ("train.epochs=0", "train.epochs must be at least 1, got 0"),
    ("data.batch_size=0", "data.batch_size must be at least 1, got 0"),
    ("train.lr=0", "train.lr must be > 0"),
    ("train.grad_accum=0", "train.grad_accum must be at least 1"),
    ("train.optimizer=adam", "train.optimizer must be sgd or adamw"),
    ("train.precision=fp16", "train.precision must be one of auto, fp32, bf16"),
    ("train.device=gpu", "train.device must be auto, cpu, cuda or cuda:N"),
    ("model.variant=big", "model.variant must be one of base, star, dagger, star_dagger"),
    ("model.fusion=mean", "model.fusion must be one of max_norm, softmax"),
    ("model.num_frames=0", "model.num_frames must be at least 1"),
    ("data.fold=6", "data.fold must be 1..5 for dfew"),
    ("data.dataset=ferv39k", "data.fold must be 1..1 for ferv39k, got 2"),
    ("data.dataset=affwild", "data.dataset: unknown dataset 'affwild'"),
    ("data.workers=-1", "data.workers must be >= 0"),
    ("model.num_frames=8", "data.num_frames=16 but model.num_frames=8"),
])
def test_bad_config_values_are_one_line_errors(override, message, capsys):
    extra = {"data.dataset=ferv39k": ["data.fold=2"], "model.num_frames=8": ["data.num_frames=16"]}.get(override, [])
    assert main(["train", override, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_bad_folds_are_one_line_errors(capsys):
    assert main(["train", "--folds", "7"]) == 2
    assert capsys.readouterr().err.strip() == "error: --folds '7': dfew has folds 1..5"
    with pytest.raises(SystemExit) as e:  # argparse: one or the other
        main(["train", "--folds", "1", "--resume", "--overwrite"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_output_path_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("a file")
    assert main(["train", f"out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'out'}: a file is in the way where a folder is expected; remove it or choose another path\n"


def test_a_read_only_output_folder_is_one_line(tmp_path, capsys, monkeypatch):
    """(Simulated: the tests may run as root, who may write anywhere.)"""
    import errno
    from pathlib import Path

    real = Path.write_bytes

    def read_only(self, data):
        if ".write-probe-" in self.name:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    assert main(["train", f"out={tmp_path / 'ro'}"]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'ro'}: read-only file system; write elsewhere (out=DIR)\n"


def test_rng_streams_of_cpu_and_every_cuda_device_are_saved_and_restored(monkeypatch):
    fake = {"states": [torch.tensor([1], dtype=torch.uint8), torch.tensor([2], dtype=torch.uint8)], "set": None}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(fake["states"]))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: fake.__setitem__("set", states))
    saved = rng_state()
    assert [int(s) for s in saved["cuda"]] == [1, 2]
    after = torch.rand(3)
    torch.rand(5)
    set_rng_state(saved)
    assert torch.equal(torch.rand(3), after)  # the CPU stream continues where it was saved
    assert [int(s) for s in fake["set"]] == [1, 2]  # every device's stream is put back


def test_resolve_device_auto_is_cpu_without_cuda():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu", local_rank=1) == torch.device("cpu")
