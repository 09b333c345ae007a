"""Run the rows of one ablation table: each row is a full training run (every requested fold) in its own folder.

    <out>/rows/<row>/          the row's run (fold_k/, summary.json), exactly as ``finecliper train`` writes it
    <out>/table.{md,csv,json}  the table in the paper's layout, ours beside the paper's numbers
    <out>/fig7_params_vs_uar.png

Resumable: a row whose ``summary.json`` covers the requested folds is finished and skipped; a row cut
short continues from its last finished epoch (``train_folds(..., resume=True)``).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


from finecliper.ablation.tables import Row, Table
from finecliper.config import load_config
from finecliper.data.labels import classes as dataset_classes
from finecliper.model.shapes import DEFAULT_SHAPE as DEFAULT_BACKBONE
from finecliper.train.config import ExperimentConfig
from finecliper.train.loop import train_folds

SUMMARY = "summary.json"


class AblationError(ValueError):
    """A row that cannot run as asked (a backbone without its checkpoint, a bad row name …)."""


@dataclass
class RowPlan:
    row: Row
    cfg: ExperimentConfig
    folder: Path
    finished: bool
    missing_backbone: bool = False  # the row's CLIP was not given (counts use its released shape)
    params: dict[str, int] | None = None  # trainable / frozen of the row's model
    summary: dict[str, Any] | None = None  # train_folds' summary (last / best over folds)


def row_overrides(row: Row, overrides: Sequence[str], backbones: Mapping[str, str], folder: Path) -> list[str]:
    """The user's overrides, then the row's (the row decides what it is about), then its own folder and backbone.

    A row on another CLIP than model.clip's (Tab. 8) gets the checkpoint given for it, or none (``model.clip=null``)."""
    out = [*overrides, *row.overrides, f"out={folder}"]
    if row.backbone in backbones:
        out.append(f"model.clip={backbones[row.backbone]}")
    elif row.backbone != DEFAULT_BACKBONE:
        out.append("model.clip=null")
    return out


def is_finished(folder: Path, folds: Sequence[int], epochs: int) -> bool:
    """A row is finished when its run summary has every requested fold trained for all ``epochs``
    (a run stopped early by ``train.stop_after`` or a kill is not)."""
    path = folder / SUMMARY
    if not path.is_file():
        return False
    try:
        done = {int(f["fold"]): int(f.get("epochs", 0)) for f in json.loads(path.read_text()).get("per_fold", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable: run (resume) it again
    return all(done.get(k, 0) >= epochs for k in folds)


def plan_rows(table: Table, rows: Sequence[Row], config: str | None, overrides: Sequence[str], folds: Sequence[int],
              out: Path, backbones: Mapping[str, str] | None = None) -> list[RowPlan]:
    """Each row's config (validated now, before any training), folder and finished state."""
    plans = []
    for row in rows:
        folder = out / "rows" / row.key
        cfg = load_config(ExperimentConfig, config, row_overrides(row, overrides, backbones or {}, folder))
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, classes=cfg.model.classes or dataset_classes(cfg.data.dataset)))
        missing = row.backbone != DEFAULT_BACKBONE and row.backbone not in (backbones or {})
        plans.append(RowPlan(row, cfg, folder, is_finished(folder, folds, cfg.train.epochs), missing_backbone=missing))
    return plans


# ----------------------------------------------------------------------------- running

def read_summary(folder: Path) -> dict[str, Any] | None:
    path = folder / SUMMARY
    return json.loads(path.read_text()) if path.is_file() else None


def run_rows(plans: Sequence[RowPlan], folds: Sequence[int], echo: Callable[[str], None] = print,
             train: Callable[..., dict] = train_folds) -> list[RowPlan]:
    """Train every unfinished row (resuming a row cut short), skip the finished ones."""
    lacking = [p for p in plans if p.missing_backbone and not p.finished]
    if lacking:  # before any training
        p = lacking[0]
        raise AblationError(f"row {p.row.key!r} runs on CLIP {p.row.backbone}: give its checkpoint with "
                            f"--backbone {p.row.backbone}=PATH (or leave the row out with --rows)")
    for i, p in enumerate(plans, 1):
        if p.finished:
            echo(f"[{i}/{len(plans)}] {p.row.key}: finished earlier, skipped ({p.folder})")
        else:
            echo(f"[{i}/{len(plans)}] {p.row.key}: {p.row.meaning}")
            train(p.cfg, list(folds), resume=p.folder.exists())  # a row cut short continues
            p.finished = is_finished(p.folder, folds, p.cfg.train.epochs)
        p.summary = read_summary(p.folder)
    return plans
