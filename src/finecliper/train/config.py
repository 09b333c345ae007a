"""The experiment config: model + data + training, one YAML file with command-line overrides."""
from __future__ import annotations

from dataclasses import dataclass, field

from finecliper.data.dataset import DataConfig
from finecliper.model.config import ModelConfig


@dataclass
class TrainConfig:
    epochs: int = 30
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to 0 (per step)
    grad_accum: int = 1  # effective batch = data.batch_size * grad_accum * world size
    precision: str = "auto"  # auto (bf16 autocast on GPU, fp32 on CPU) | fp32 | bf16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU threads (torch.set_num_threads)
    max_steps_per_epoch: int | None = None  # for smoke runs
    stop_after: int | None = None  # stop after this many epochs in this run (time-limited jobs; then --resume)
    select_metric: str = "war"  # best-on-test epoch chosen by this metric (DFER convention: WAR)
    log_every: int = 10


@dataclass
class ExperimentConfig:
    name: str = "finecliper"
    out: str = "runs/finecliper"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    face_cache: str | None = None  # `finecliper extract` output (variants * and *†)
    descriptions: str | None = None  # `finecliper describe` JSONL (variants † and *†)
