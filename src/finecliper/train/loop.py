"""The training loop: plain PyTorch, readable top to bottom.

Per fold: build the model and data, then for each epoch train, evaluate on the test split, log a
JSONL line, and save ``last/`` (weights + trainer state, so ``--resume`` continues after the last
finished epoch) and ``best/`` (the best-on-test epoch, labelled as such: DFER papers select on the
test fold, reference §5.7). Reports for both are written at the end.
"""
from __future__ import annotations

import io
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from finecliper.config import dump_yaml
from finecliper.data.dataset import build_datasets, collate_clips
from finecliper.data.labels import classes as dataset_classes
from finecliper.io import write_json
from finecliper.model.build import build_model, load_backbones
from finecliper.model.checkpoint import load_tunable_weights, save_checkpoint
from finecliper.train.config import ExperimentConfig
from finecliper.train.distributed import Dist, barrier, init_distributed, resolve_device
from finecliper.train.evaluation import autocast, predict, score_predictions, to_device
from finecliper.train.schedule import warmup_cosine

STATE = "state.pt"


def make_extras(cfg: ExperimentConfig, model, training: bool = True) -> tuple[list, list]:
    """Dataset plug-ins (train, test) for the modalities beyond frames that the model needs."""
    extras = []
    mods = cfg.model.modalities()
    if "parsing" in mods:
        if not cfg.face_cache:
            raise ValueError(f"variant {cfg.model.variant!r} needs face maps: run `finecliper extract` and set face_cache=DIR")
        from finecliper.face.maps_extra import FaceMapsExtra

        extras.append(FaceMapsExtra(cfg.face_cache, cfg.data.image_size))
    if "description" in mods:
        if not cfg.descriptions:
            raise ValueError(f"variant {cfg.model.variant!r} needs descriptions: run `finecliper describe` and set descriptions=FILE")
        from finecliper.text.description_extra import DescriptionExtra

        extras.append(DescriptionExtra(cfg.descriptions, model.tokenize_description, cfg.model.desc_context_length))
    if not (cfg.model.zero_shot and training):
        return extras, extras
    # zero-shot: training clips are paired with a caption or description; test clips are scored by video alone
    from finecliper.text.description_extra import DescriptionExtra

    if cfg.descriptions in (None, "", "captions"):
        from finecliper.data.splits import read_split

        records = read_split(cfg.data.dataset, cfg.data.annotations, cfg.data.fold, "train", captions=True, layout=cfg.data.layout)
        texts = {r.clip_id: r.caption for r in records if r.caption}
    else:
        texts = cfg.descriptions
    return extras + [DescriptionExtra(texts, model.tokenize_description, cfg.model.desc_context_length)], extras


def make_logger(path: Path, is_main: bool) -> logging.Logger:
    """A logger of this run only (file + console on the main rank); no global logging config touched."""
    log = logging.getLogger(f"finecliper.run.{path.parent}")
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    if is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(path)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(fh)
    return log


def _loader(ds, batch_size, workers, shuffle, d: Dist, seed: int, epoch: int = 0):
    if d.enabled:  # each rank a disjoint slice; the dataset's own RNG keeps augmentation rank-independent
        order = np.random.default_rng([seed, epoch]).permutation(len(ds)) if shuffle else np.arange(len(ds))
        ds, shuffle = Subset(ds, order[d.rank::d.world_size].tolist()), False
    g = torch.Generator().manual_seed(seed * 1000 + epoch)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=workers, collate_fn=collate_clips,
                      generator=g, drop_last=False, persistent_workers=False, pin_memory=torch.cuda.is_available())


class _Progress:
    """A rich progress bar on the main rank (no-op elsewhere)."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=True)

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


def train_fold(cfg: ExperimentConfig, fold: int, out_dir: Path, resume: bool = False, backbones=None) -> dict[str, Any]:
    """Train and evaluate one fold; returns the summary also written to ``out_dir/summary.json``."""
    tc = cfg.train
    if tc.threads:
        torch.set_num_threads(tc.threads)
    cfg.data.fold = fold
    cfg.model.classes = cfg.model.classes or dataset_classes(cfg.data.dataset)
    num_classes = len(cfg.model.classes)
    probe = torch.device("cuda" if tc.device.startswith("cuda") or (tc.device == "auto" and torch.cuda.is_available()) else "cpu")
    d = init_distributed(probe.type)
    device = resolve_device(tc.device, d)
    log = make_logger(out_dir / "train.log", d.is_main)
    torch.manual_seed(cfg.data.seed + d.rank)

    clip, longclip = backbones or load_backbones(cfg.model)
    model = build_model(cfg.model, clip, longclip).to(device)
    train_ds, test_ds = build_datasets(cfg.data, *make_extras(cfg, model))
    log.info("fold %d: %d train / %d test clips, %s, device %s, world %d", fold, len(train_ds), len(test_ds),
             cfg.model.variant, device, d.world_size)
    counts = model.parameter_counts()["total"]
    log.info("parameters: %s trainable, %s frozen", f"{counts['trainable']:,}", f"{counts['frozen']:,}")

    params = model.trainable_parameters()
    if tc.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    elif tc.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)
    else:
        raise ValueError(f"train.optimizer must be sgd or adamw, got {tc.optimizer!r}")
    batches = math.ceil(len(train_ds) / (cfg.data.batch_size * d.world_size))
    if tc.max_steps_per_epoch:
        batches = min(batches, tc.max_steps_per_epoch)
    steps_per_epoch = max(1, batches // tc.grad_accum)
    total, warm = steps_per_epoch * tc.epochs, int(round(tc.warmup_epochs * steps_per_epoch))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, warm))
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if d.enabled else model

    start, history, best = 0, [], None
    last_dir, best_dir = out_dir / "last", out_dir / "best"
    if resume and (last_dir / STATE).is_file():
        load_tunable_weights(model, last_dir / "model.safetensors")
        state = torch.load(last_dir / STATE, map_location="cpu", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        start, best = int(state["epoch"]) + 1, state["best"]
        history = json.loads(state["history"])
        log.info("resumed after epoch %d", start - 1)
    elif resume:
        log.info("nothing to resume in %s: starting fresh", last_dir)

    test_loader = _loader(test_ds, cfg.data.batch_size, cfg.data.workers, False, d, cfg.data.seed)
    with _Progress(d.is_main) as bars:
        stop = tc.epochs if tc.stop_after is None else min(tc.epochs, start + tc.stop_after)
        for epoch in range(start, stop):
            t0 = time.time()
            ddp.train()
            train_ds.set_epoch(epoch)
            loader = _loader(train_ds, cfg.data.batch_size, cfg.data.workers, True, d, cfg.data.seed, epoch)
            tick = bars.task(f"fold {fold} epoch {epoch + 1}/{tc.epochs}", batches)
            run_loss, n_seen = 0.0, 0
            opt.zero_grad(set_to_none=True)
            for i, batch in enumerate(loader):
                if i >= batches:
                    break
                batch = to_device(batch, device)
                with autocast(device, tc.precision):
                    out = ddp(batch)
                (out.loss / tc.grad_accum).backward()
                if (i + 1) % tc.grad_accum == 0 or i + 1 == batches:
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                run_loss += float(out.loss.detach()) * len(batch["clip_id"])
                n_seen += len(batch["clip_id"])
                tick(info=f"loss {run_loss / n_seen:.4f}")
                if d.is_main and tc.log_every and i % tc.log_every == 0:
                    log.info("epoch %d step %d/%d loss %.4f lr %.2e", epoch + 1, i + 1, batches, float(out.loss.detach()), sched.get_last_lr()[0])
            test_tick = bars.task(f"fold {fold} evaluate", len(test_loader))
            pred = predict(model, test_loader, device, tc.precision, d, progress=test_tick)
            scores = score_predictions(pred, num_classes)
            rec = {"epoch": epoch + 1, "train_loss": run_loss / max(1, n_seen), "lr": sched.get_last_lr()[0],
                   "test_uar": scores["uar"], "test_war": scores["war"], "modality_war": scores["modality_war"],
                   "mean_weights": scores.get("mean_weights"), "seconds": round(time.time() - t0, 2)}
            history.append(rec)
            metric = scores[tc.select_metric]
            improved = best is None or metric > best["metric"]
            if improved:
                best = {"metric": metric, "epoch": epoch + 1}
            if d.is_main:
                log.info("epoch %d: loss %.4f  UAR %.4f  WAR %.4f%s", epoch + 1, rec["train_loss"], scores["uar"],
                         scores["war"], "  (best)" if improved else "")
                with open(out_dir / "history.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")
                _write_predictions(out_dir / "predictions_last.json", pred, scores)
                if improved:
                    save_checkpoint(model, best_dir)
                    _write_predictions(out_dir / "predictions_best.json", pred, scores)
                state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                         "best": best, "torch_rng": torch.get_rng_state(), "history": json.dumps(history)}
                buf = io.BytesIO()
                torch.save(state, buf)
                save_checkpoint(model, last_dir, extra_files={STATE: buf.getvalue()})  # the epoch is now safe
            barrier(d)

    summary = {}
    if stop < tc.epochs:
        log.info("stopped after epoch %d of %d (train.stop_after); continue with --resume", stop, tc.epochs)
    if d.is_main:
        summary = finish_fold(cfg, fold, out_dir, history, best)
    return summary


def _write_predictions(path: Path, pred: dict, scores: dict) -> None:
    write_json(path, {"scores": scores, "clip_ids": pred["clip_ids"], "labels": pred["labels"].tolist(),
                      "preds": pred["preds"].tolist(), "probs": np.round(pred["probs"], 5).tolist()})


def finish_fold(cfg: ExperimentConfig, fold: int, out_dir: Path, history: list[dict], best: dict | None) -> dict:
    """Reports for the last and the best-on-test epoch, each labelled as such."""
    from finecliper.eval.report import plot_learning_curve, write_fold_report

    summary: dict[str, Any] = {"fold": fold, "dataset": cfg.data.dataset, "variant": cfg.model.variant,
                               "data_variant": cfg.data.variant, "epochs": len(history)}
    for tag in ("last", "best"):
        s = json.loads((out_dir / f"predictions_{tag}.json").read_text())["scores"]
        epoch = len(history) if tag == "last" else best["epoch"]
        label = "last epoch" if tag == "last" else f"best-on-test epoch (selected by test {cfg.train.select_metric.upper()})"
        write_fold_report(out_dir, tag, np.array(s["confusion"]), cfg.data.dataset, extra={"epoch": epoch, "selection": label})
        summary[tag] = {"uar": s["uar"], "war": s["war"], "per_class_recall": s["per_class_recall"],
                        "confusion": s["confusion"], "epoch": epoch, "selection": label}
    plot_learning_curve(out_dir / "curves.png", [{k: v for k, v in h.items() if isinstance(v, (int, float))} for h in history],
                        title=f"{cfg.data.dataset} fold {fold} · {cfg.model.variant}")
    (out_dir / "config.yaml").write_text(dump_yaml(cfg))
    write_json(out_dir / "summary.json", summary)
    return summary


def train_folds(cfg: ExperimentConfig, folds: list[int], resume: bool = False) -> dict:
    """Every requested fold, then the mean and spread of per-fold UAR/WAR (never pooled across folds)."""
    from finecliper.eval.metrics import summarize_folds

    out = Path(cfg.out)
    backbones = load_backbones(cfg.model)  # loaded once for all folds
    results = [train_fold(cfg, k, out / f"fold_{k}", resume, backbones) for k in folds]
    if not results or not results[0]:
        return {}
    summary = {"dataset": cfg.data.dataset, "variant": cfg.model.variant, "data_variant": cfg.data.variant,
               "folds": folds, "per_fold": results}
    from finecliper.eval.report import write_per_class_table

    for tag in ("last", "best"):
        summary[tag] = summarize_folds([r[tag] for r in results])
        write_per_class_table(out / f"per_class_{tag}", {f"fold {r['fold']} ({tag})": np.array(r[tag]["confusion"])
                                                         for r in results}, cfg.data.dataset)
    write_json(out / "summary.json", summary)
    return summary
