"""A fold's run folder: never overwritten unasked, and resumable after a kill at any instant.

    fold_1/
      last/          the newest finished epoch: model checkpoint (``model.factory``) + state.pt
                     (optimizer, schedule, every rank's CPU and CUDA RNG streams, best so far, history)
      previous/      the epoch before it: the fallback should last/ be unreadable
      best/          the best-on-test epoch (model checkpoint only)
      history.jsonl  one line per finished epoch, appended only once last/ holds that epoch; on resume
                     it is rewritten from state.pt, so no epoch is ever missing or listed twice
      train.log, predictions_{last,best}.json, reports

``save_state`` swaps the new last/ in with two renames (``io.replace_dir``, the old last/ becoming
previous/). A kill at any instant leaves a complete last/, or between the renames a complete
previous/; ``load_state`` first puts an interrupted swap right (``io.recover_dir``), then loads the
newest checkpoint that reads, and says which.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from finecliper.io import append_line, atomic_write, recover_dir
from finecliper.model import factory
from finecliper.model.factory import CheckpointError
from finecliper.train.distributed import Dist, barrier, gather_objects

LAST, PREVIOUS, BEST, STATE, HISTORY = "last", "previous", "best", "state.pt", "history.jsonl"
DAMAGED = "last.damaged"  # an unreadable last/ is moved here (not deleted) once previous/ has been resumed from
# what a finished run leaves in its fold folder (cleared by --overwrite; train.log is kept and appended to)
RUN_ARTEFACTS = (LAST, PREVIOUS, BEST, DAMAGED, HISTORY, "summary.json", "config.yaml", "curves.png",
                 "predictions_last.json", "predictions_best.json")
# model settings that may differ on resume: paths (the backbones' hashes are checked instead) and
# switches that do not change the math
RESUMABLE_CHANGES = ("clip", "longclip", "allow_pickle", "attention", "grad_checkpoint")


class RunDirError(ValueError):
    """A fold folder that already holds a run, without --resume or --overwrite."""


class DamagedCheckpoint(CheckpointError):
    """A checkpoint file that cannot be read (the next older checkpoint may still be)."""


@dataclass
class RunState:
    """Where training stands: ``epochs_done`` finished epochs, the best-on-test so far, one record per epoch."""

    epochs_done: int = 0
    best: dict[str, Any] | None = None  # {"metric": float, "epoch": int}
    history: list[dict[str, Any]] = field(default_factory=list)

    def after_epoch(self, record: dict[str, Any], metric: float) -> tuple["RunState", bool]:
        improved = self.best is None or metric > self.best["metric"]
        best = {"metric": metric, "epoch": record["epoch"]} if improved else self.best
        return RunState(self.epochs_done + 1, best, self.history + [record]), improved


# ----------------------------------------------------------------------------- the run folder

def existing_run(fold_dir: Path) -> list[str]:
    return [name for name in (LAST, PREVIOUS, BEST) if (fold_dir / name).exists()]


def claim_run_dir(fold_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a folder that holds a run unless the user said what to do with it."""
    found = existing_run(fold_dir)
    if found and not (resume or overwrite):
        raise RunDirError(f"{fold_dir} already holds a run ({', '.join(n + '/' for n in found)}); "
                          f"pass --resume to continue it or --overwrite to replace it")


def clear_run(fold_dir: Path) -> list[str]:
    """--overwrite: remove the previous run's checkpoints, history and reports (train.log stays)."""
    removed = []
    patterns = [*RUN_ARTEFACTS, "last_*", "best_*", f".{LAST}.*", f".{BEST}.*", f".{PREVIOUS}.*"]
    for path in sorted({p for pat in patterns for p in fold_dir.glob(pat)}):
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        removed.append(path.name)
    return removed


# ----------------------------------------------------------------------------- RNG streams

def rng_state() -> dict[str, Any]:
    """This process's CPU stream and, when there is CUDA, every device's stream."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- save / load, a symmetric pair

def save_state(model, opt: torch.optim.Optimizer, sched, run: RunState, fold_dir: Path, d: Dist = Dist()) -> None:
    """Checkpoint + trainer state into last/ (atomically), then the epoch's history line. Every rank calls it."""
    rngs = gather_objects(d, rng_state())  # each rank has its own streams (seeded with seed + rank)
    if d.is_main:
        state = {"epochs_done": run.epochs_done, "best": run.best, "history": json.dumps(run.history),
                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rngs}
        buf = io.BytesIO()
        torch.save(state, buf)
        factory.save(model, fold_dir / LAST, extra_files={STATE: buf.getvalue()}, keep=fold_dir / PREVIOUS)
        append_line(fold_dir / HISTORY, json.dumps(run.history[-1]))  # the epoch is safe: now it is history
    barrier(d)


def load_state(model, opt: torch.optim.Optimizer, sched, fold_dir: Path, d: Dist = Dist(),
               say: Callable[[str], None] = print) -> RunState:
    """The newest readable checkpoint of ``fold_dir`` into model, optimizer, schedule and RNG; a fresh
    :class:`RunState` when there is none. Every rank calls it."""
    if d.is_main:
        for note in recover_dir(fold_dir / LAST, keep=fold_dir / PREVIOUS):
            say(f"{fold_dir}: {note}")
    barrier(d)
    damage = []
    for name in (LAST, PREVIOUS):
        directory = fold_dir / name
        if not directory.exists():
            continue
        try:
            run = _load_from(model, opt, sched, directory, d, say)
        except DamagedCheckpoint as e:
            damage.append(" ".join(str(e).split()))
            continue
        barrier(d)  # every rank has read it before it may be moved
        if d.is_main:
            if damage:
                say(f"warning: {damage[0]}; falling back to {directory}, the checkpoint before it")
            if name == PREVIOUS:
                _set_aside_damaged(fold_dir)
            with atomic_write(fold_dir / HISTORY, "w") as f:  # exactly the epochs the checkpoint holds
                f.writelines(json.dumps(h) + "\n" for h in run.history)
        barrier(d)
        return run
    if damage:
        raise CheckpointError(f"{damage[0]}; there is no complete earlier checkpoint to fall back to. "
                              f"Pass --overwrite to start this fold afresh")
    say(f"{fold_dir}: nothing to resume, starting fresh")
    return RunState()


def _load_from(model, opt, sched, directory: Path, d: Dist, say: Callable[[str], None]) -> RunState:
    """All-or-nothing: everything is read and checked before anything is applied."""
    if not (directory / STATE).is_file():
        raise DamagedCheckpoint(f"{directory}: no {STATE} (trainer state)")
    try:
        saved_cfg, recorded = factory.read_config(directory), factory.read_backbone_identities(directory)
    except CheckpointError as e:
        raise DamagedCheckpoint(str(e)) from e
    factory.check_backbones(directory, model.backbone_identities, model.cfg.backbone_roles(), recorded=recorded)
    changed = [f"model.{f.name}: {getattr(saved_cfg, f.name)!r} -> {getattr(model.cfg, f.name)!r}"
               for f in dataclasses.fields(saved_cfg)
               if f.name not in RESUMABLE_CHANGES and getattr(saved_cfg, f.name) != getattr(model.cfg, f.name)]
    if changed:
        raise CheckpointError(f"{directory} was trained with another model config ({'; '.join(changed)}); resume "
                              f"with the config it was trained with, or pass --overwrite to start afresh")
    try:
        tensors = factory.read_weights(directory)
    except CheckpointError as e:
        raise DamagedCheckpoint(str(e)) from e
    path = directory / STATE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        run = RunState(int(state["epochs_done"]), state["best"], json.loads(state["history"]))
        optimizer, scheduler, rngs = state["optimizer"], state["scheduler"], state["rng"]
    except Exception as e:  # a truncated zip, a foreign pickle, a missing key: all mean "cannot resume from this"
        raise DamagedCheckpoint(f"{path}: damaged trainer state ({type(e).__name__}: {e})") from e
    factory.load_weights(model, tensors, directory / factory.WEIGHTS)
    opt.load_state_dict(optimizer)
    sched.load_state_dict(scheduler)
    if len(rngs) == d.world_size:
        set_rng_state(rngs[d.rank])
    elif d.is_main:
        say(f"warning: {path} was saved by {len(rngs)} process(es), this run has {d.world_size}: "
            f"random streams restart from the seed")
    return run


def _set_aside_damaged(fold_dir: Path) -> None:
    """previous/ (resumed from) becomes last/; the unreadable last/ is kept as last.damaged/ for a look."""
    damaged = fold_dir / DAMAGED
    if damaged.exists():
        shutil.rmtree(damaged)
    if (fold_dir / LAST).exists():
        os.replace(fold_dir / LAST, damaged)
    os.replace(fold_dir / PREVIOUS, fold_dir / LAST)
