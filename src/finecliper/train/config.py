"""The experiment config: model + data + training, one YAML file with command-line overrides.

Every value is checked when the config is built (``finecliper.config.load_config``), so a typo
fails with one line before anything is loaded.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from finecliper.config import ConfigError
from finecliper.data.dataset import DataConfig
from finecliper.device import DEVICE_PATTERN, PRECISIONS
from finecliper.model.config import ModelConfig

OPTIMIZERS = ("sgd", "adamw")
SELECT_METRICS = ("war", "uar")


@dataclass
class TrainConfig:
    epochs: int = 30  # passes over the training split
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 1e-3  # peak learning rate (after warm-up)
    momentum: float = 0.9  # SGD momentum (optimizer=sgd)
    weight_decay: float = 1e-4  # L2 weight decay of the trainable parameters
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to 0 (per optimiser step)
    grad_accum: int = 1  # effective batch = data.batch_size * grad_accum * world size
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU threads (torch.set_num_threads)
    max_steps_per_epoch: int | None = None  # batches per epoch, at most (smoke runs)
    stop_after: int | None = None  # stop after this many epochs in this run (time-limited jobs; then --resume)
    select_metric: str = "war"  # best-on-test epoch chosen by this metric (DFER convention: WAR)
    log_every: int = 10  # batches between two train.log lines (0: none)

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, f"train.epochs must be at least 1, got {self.epochs}"),
            (self.optimizer in OPTIMIZERS, f"train.optimizer must be sgd or adamw, got {self.optimizer!r}"),
            (self.lr > 0, f"train.lr must be > 0, got {self.lr}"),
            (self.momentum >= 0, f"train.momentum must be >= 0, got {self.momentum}"),
            (self.weight_decay >= 0, f"train.weight_decay must be >= 0, got {self.weight_decay}"),
            (self.warmup_epochs >= 0, f"train.warmup_epochs must be >= 0, got {self.warmup_epochs}"),
            (self.grad_accum >= 1, f"train.grad_accum must be at least 1, got {self.grad_accum}"),
            (self.precision in PRECISIONS, f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (DEVICE_PATTERN.fullmatch(self.device) is not None,
             f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
            (self.threads is None or self.threads >= 1, f"train.threads must be at least 1, got {self.threads}"),
            (self.max_steps_per_epoch is None or self.max_steps_per_epoch >= 1,
             f"train.max_steps_per_epoch must be at least 1, got {self.max_steps_per_epoch}"),
            (self.stop_after is None or self.stop_after >= 1, f"train.stop_after must be at least 1, got {self.stop_after}"),
            (self.select_metric in SELECT_METRICS, f"train.select_metric must be war or uar, got {self.select_metric!r}"),
            (self.log_every >= 0, f"train.log_every must be >= 0, got {self.log_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class ExperimentConfig:
    name: str = "finecliper"  # the run's name (reports, logs)
    out: str = "runs/finecliper"  # output folder: one fold_<k> folder per fold
    model: ModelConfig = field(default_factory=ModelConfig)  # the FineCLIPER model (finecliper.model.config)
    data: DataConfig = field(default_factory=DataConfig)  # the dataset, split and sampling (finecliper.data.dataset)
    train: TrainConfig = field(default_factory=TrainConfig)  # optimiser, schedule and runtime
    face_cache: str | None = None  # `finecliper extract` output (variants * and *†)
    descriptions: str | None = None  # `finecliper describe` JSONL (variants † and *†)
    allow_leaking_descriptions: bool = False  # accept a description cache whose header says leaks_label: true

    def __post_init__(self) -> None:
        # The number of frames is stated once, as model.num_frames (the temporal embedding has one slot per
        # frame); data.num_frames follows it unless set (a baseline without a model may sample its own).
        if self.data.num_frames is None:
            self.data = dataclasses.replace(self.data, num_frames=self.model.num_frames)

    def check_frames(self) -> None:
        """A model is trained on clips of exactly model.num_frames frames."""
        if self.data.num_frames != self.model.num_frames:
            raise ConfigError(f"data.num_frames={self.data.num_frames} but model.num_frames={self.model.num_frames}: "
                              f"the model takes as many frames as it has temporal slots; set model.num_frames only")
