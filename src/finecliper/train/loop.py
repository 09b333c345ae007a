"""The training loop: plain PyTorch, readable top to bottom.

``train_folds`` checks what it can before any work (the output folder is writable, no run is
overwritten unasked, each fold's clips all have their inputs), then trains each fold. Per epoch
``train_fold`` runs ``train_one_epoch``, ``evaluate`` on the test split, and ``save_state``: last/
(weights + trainer state, so ``--resume`` continues after the last finished epoch, see
``train.state``) and best/ (the best-on-test epoch, labelled as such: DFER papers select on the test
fold, reference §5.7). Reports for both are written at the end.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import get_cosine_schedule_with_warmup

from finecliper.config import dump_yaml
from finecliper.data.dataset import build_datasets
from finecliper.data.labels import classes as dataset_classes
from finecliper.device import autocast, resolve_device, to_device
from finecliper.eval.metrics import summarize_folds
from finecliper.eval.report import plot_learning_curve, write_fold_report, write_per_class_table
from finecliper.io import check_writable, naming_path, remove_temp_files, write_json
from finecliper.model import factory
from finecliper.model.finecliper import FineCLIPER
from finecliper.train.config import ExperimentConfig, TrainConfig
from finecliper.train.distributed import Dist, barrier, init_distributed, shard_loader
from finecliper.train.evaluation import evaluate, write_predictions
from finecliper.train.inputs import check_datasets, make_inputs
from finecliper.train.state import BEST, HISTORY, RunDirError, RunState, claim_run_dir, clear_run, load_state, save_state


# ----------------------------------------------------------------------------- the pieces

def make_optimizer(model: FineCLIPER, tc: TrainConfig) -> torch.optim.Optimizer:
    params = model.trainable_parameters()
    if tc.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)


def steps_per_epoch(batches: int, grad_accum: int) -> int:
    """Optimiser steps per epoch: one per ``grad_accum`` batches, and one for a last, smaller group."""
    return math.ceil(batches / grad_accum)


def make_schedule(opt: torch.optim.Optimizer, tc: TrainConfig, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_epochs``, then cosine decay reaching 0 after the last step (per step)."""
    return get_cosine_schedule_with_warmup(opt, num_warmup_steps=round(tc.warmup_epochs * steps),
                                           num_training_steps=steps * tc.epochs)


def train_one_epoch(model, loader, opt: torch.optim.Optimizer, sched, batches: int, grad_accum: int,
                    device: torch.device, precision: str,
                    on_batch: Callable[[int, float, float], None] | None = None) -> dict[str, float]:
    """``batches`` batches of ``loader``, one optimiser step per ``grad_accum`` of them.

    Returns the mean loss, the learning rate of the epoch's last step and the number of steps.
    """
    model.train()
    opt.zero_grad(set_to_none=True)
    total, seen, steps, lr = 0.0, 0, 0, 0.0
    for i, batch in enumerate(itertools.islice(loader, batches)):
        first = i - i % grad_accum
        group = min(grad_accum, batches - first)  # the last group may be smaller: divide by its real size
        step_now = i == first + group - 1
        # DDP: gradients are all-reduced only on the batch that steps
        no_sync = model.no_sync() if hasattr(model, "no_sync") and not step_now else contextlib.nullcontext()
        with no_sync:
            with autocast(device, precision):
                out = model(to_device(batch, device))
            (out.loss / group).backward()
        if step_now:
            lr = opt.param_groups[0]["lr"]
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            steps += 1
        loss, n = float(out.loss.detach()), len(batch["clip_id"])
        total, seen = total + loss * n, seen + n
        if on_batch is not None:
            on_batch(i, loss, lr)
    return {"loss": total / max(1, seen), "lr": lr, "steps": steps}


def fold_config(cfg: ExperimentConfig, fold: int) -> ExperimentConfig:
    """``cfg`` for one fold, with the dataset's class words unless the config names its own."""
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, fold=fold),
                               model=dataclasses.replace(cfg.model, classes=cfg.model.classes or dataset_classes(cfg.data.dataset)))


class RunLog:
    """A fold's train.log (main rank only); ``say`` also prints the line to the console."""

    def __init__(self, path: Path, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled:
            with naming_path(path.parent):
                path.parent.mkdir(parents=True, exist_ok=True)

    def info(self, message: str) -> None:
        if self.enabled:
            with naming_path(self.path), open(self.path, "a", encoding="utf-8") as f:
                f.write(f"{datetime.now().isoformat(sep=' ', timespec='seconds')} {message}\n")

    def say(self, message: str) -> None:
        self.info(message)
        if self.enabled:
            print(message, file=sys.stderr, flush=True)


class ProgressBars:
    """Rich progress bars on the main rank (no-op elsewhere), gone when done."""

    def __init__(self, enabled: bool):
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[info]}"), transient=True) if enabled else None

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
        return self

    def __exit__(self, *a):
        if self.bar:
            self.bar.__exit__(*a)

    def task(self, desc: str, total: int):
        if not self.bar:
            return lambda **kw: None
        tid = self.bar.add_task(desc, total=total, info="")
        return lambda advance=1, **kw: self.bar.update(tid, advance=advance, **kw)


# ----------------------------------------------------------------------------- one fold

def train_fold(cfg: ExperimentConfig, fold: int, out_dir: Path, resume: bool = False, backbones=(None, None),
               d: Dist = Dist()) -> dict[str, Any]:
    """Train and evaluate one fold; returns the summary also written to ``out_dir/summary.json``."""
    cfg, tc = fold_config(cfg, fold), cfg.train
    device = resolve_device(tc.device, d.local_rank if d.enabled else None)
    log = RunLog(out_dir / "train.log", d.is_main)
    torch.manual_seed(cfg.data.seed + d.rank)

    model = FineCLIPER.from_config(cfg.model, *backbones).to(device)
    inputs = make_inputs(cfg, model.tokenize_description)
    train_ds, test_ds = build_datasets(cfg.data, inputs.train_extras, inputs.test_extras)
    check_datasets([("train", train_ds), ("test", test_ds)], cfg.data.manifest, inputs.notes)  # before any training
    for note in inputs.notes:
        log.say(f"warning: {note}")
    train_loader = shard_loader(train_ds, cfg.data.batch_size, cfg.data.workers, d, shuffle=True, seed=cfg.data.seed)
    test_loader = shard_loader(test_ds, cfg.data.batch_size, cfg.data.workers, d, shuffle=False, seed=cfg.data.seed)
    batches = min(len(train_loader), tc.max_steps_per_epoch or len(train_loader))  # the same on every rank
    opt = make_optimizer(model, tc)
    sched = make_schedule(opt, tc, steps_per_epoch(batches, tc.grad_accum))
    run = load_state(model, opt, sched, out_dir, d, log.say) if resume else RunState()
    if run.epochs_done:
        log.say(f"fold {fold}: resuming after epoch {run.epochs_done} of {tc.epochs} from {out_dir / 'last'}")
    else:
        log.say(f"fold {fold}: training from scratch into {out_dir}")
        if d.is_main:
            (out_dir / HISTORY).unlink(missing_ok=True)  # a history without its checkpoint is not this run's
    ddp = torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None) if d.enabled else model
    counts = model.parameter_counts()["total"]
    log.info(f"fold {fold}: {len(train_ds)} train / {len(test_ds)} test clips, {cfg.model.variant}, device {device}, "
             f"world {d.world_size}, {batches} batches per epoch; parameters: {counts['trainable']:,} trainable, "
             f"{counts['frozen']:,} frozen")

    stop = tc.epochs if tc.stop_after is None else min(tc.epochs, run.epochs_done + tc.stop_after)
    with ProgressBars(d.is_main) as bars:
        for epoch in range(run.epochs_done, stop):
            t0 = time.time()
            train_loader.sampler.set_epoch(epoch)  # the shuffle of this epoch
            train_ds.set_epoch(epoch)  # the augmentation of this epoch
            tick = bars.task(f"fold {fold} epoch {epoch + 1}/{tc.epochs}", batches)

            def on_batch(i: int, loss: float, lr: float) -> None:
                tick(info=f"loss {loss:.4f}")
                if tc.log_every and i % tc.log_every == 0:
                    log.info(f"epoch {epoch + 1} batch {i + 1}/{batches} loss {loss:.4f} lr {lr:.2e}")

            stats = train_one_epoch(ddp, train_loader, opt, sched, batches, tc.grad_accum, device, tc.precision, on_batch)
            pred, scores = evaluate(model, test_loader, device, tc.precision, d,
                                    bars.task(f"fold {fold} evaluate", len(test_loader)))
            record = {"epoch": epoch + 1, "train_loss": stats["loss"], "lr": stats["lr"], "steps": stats["steps"],
                      "test_uar": scores["uar"], "test_war": scores["war"], "modality_war": scores["modality_war"],
                      "mean_weights": scores.get("mean_weights"), "seconds": round(time.time() - t0, 2)}
            run, improved = run.after_epoch(record, scores[tc.select_metric])
            if d.is_main:  # best/ first: a kill before last/ is saved only repeats this epoch
                write_predictions(out_dir / "predictions_last.json", pred, scores)
                if improved:
                    factory.save(model, out_dir / BEST)
                    write_predictions(out_dir / "predictions_best.json", pred, scores)
            save_state(model, opt, sched, run, out_dir, d)
            log.say(f"fold {fold} epoch {epoch + 1}/{tc.epochs}: loss {stats['loss']:.4f}  UAR {scores['uar']:.4f}  "
                    f"WAR {scores['war']:.4f}{'  (best)' if improved else ''}")
    if stop < tc.epochs:
        log.say(f"fold {fold}: stopped after epoch {stop} of {tc.epochs} (train.stop_after); continue with --resume")
    return finish_fold(cfg, fold, out_dir, run, inputs.descriptions) if d.is_main else {}


def curve_point(epoch: dict[str, Any]) -> dict[str, float]:
    """One history line as numbers to plot: each branch's own test WAR becomes ``<modality>_war``."""
    point = {k: v for k, v in epoch.items() if isinstance(v, (int, float))}
    point.update({f"{m}_war": w for m, w in (epoch.get("modality_war") or {}).items()})
    return point


def finish_fold(cfg: ExperimentConfig, fold: int, out_dir: Path, run: RunState, descriptions: dict | None) -> dict:
    """Reports for the last and the best-on-test epoch, each labelled as such."""
    summary: dict[str, Any] = {"fold": fold, "dataset": cfg.data.dataset, "variant": cfg.model.variant,
                               "data_variant": cfg.data.variant, "epochs": run.epochs_done, "descriptions": descriptions}
    for tag in ("last", "best"):
        s = json.loads((out_dir / f"predictions_{tag}.json").read_text())["scores"]
        epoch = run.epochs_done if tag == "last" else run.best["epoch"]
        label = "last epoch" if tag == "last" else f"best-on-test epoch (selected by test {cfg.train.select_metric.upper()})"
        write_fold_report(out_dir, tag, np.array(s["confusion"]), cfg.data.dataset, extra={"epoch": epoch, "selection": label},
                          title=f"{cfg.model.display_name()} · {cfg.data.dataset} fold {fold} test · epoch {epoch}, {label}")
        summary[tag] = {"uar": s["uar"], "war": s["war"], "per_class_recall": s["per_class_recall"],
                        "confusion": s["confusion"], "epoch": epoch, "selection": label}
    plot_learning_curve(out_dir / "curves.png", [curve_point(h) for h in run.history],
                        title=f"{cfg.model.display_name()} · {cfg.data.dataset} fold {fold}")
    write_json(out_dir / "summary.json", summary)
    with naming_path(out_dir / "config.yaml"):
        (out_dir / "config.yaml").write_text(dump_yaml(cfg))
    return summary


# ----------------------------------------------------------------------------- all folds

def train_folds(cfg: ExperimentConfig, folds: list[int], resume: bool = False, overwrite: bool = False) -> dict:
    """Every requested fold, then the mean and spread of per-fold UAR/WAR (never pooled across folds)."""
    tc = cfg.train
    cfg.check_frames()
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other: continue the run, or replace it")
    if tc.threads:
        torch.set_num_threads(tc.threads)
    d = init_distributed("cuda" if resolve_device(tc.device).type == "cuda" else "cpu")
    out = Path(cfg.out)
    fold_dirs = {k: out / f"fold_{k}" for k in folds}
    for k in folds:  # every fold before any work: fold 3's finished run must not be found after two folds
        claim_run_dir(fold_dirs[k], resume, overwrite)
    if d.is_main:
        check_writable(out)
        remove_temp_files(out)
        for k in folds:
            remove_temp_files(fold_dirs[k])  # reports half-written by a killed run
            removed = clear_run(fold_dirs[k]) if overwrite else []
            if removed:
                print(f"{fold_dirs[k]}: --overwrite: removed the earlier run ({', '.join(removed)})", file=sys.stderr)
    barrier(d)
    backbones = factory.load_backbones(cfg.model)  # loaded once for all folds
    results = [train_fold(cfg, k, fold_dirs[k], resume, backbones, d) for k in folds]
    if not d.is_main or not results or not results[0].get("last"):
        return {}
    summary = {"dataset": cfg.data.dataset, "variant": cfg.model.variant, "data_variant": cfg.data.variant,
               "folds": folds, "per_fold": results}
    for tag in ("last", "best"):
        summary[tag] = summarize_folds([r[tag] for r in results])
        write_per_class_table(out / f"per_class_{tag}", {f"fold {r['fold']} ({tag})": np.array(r[tag]["confusion"])
                                                         for r in results}, cfg.data.dataset)
    write_json(out / "summary.json", summary)
    return summary
