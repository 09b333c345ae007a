"""What a run reads besides the frames, and the checks made on it before epoch 1.

A variant with face maps reads a face cache (``finecliper extract``), one with descriptions a
description cache (``finecliper describe``); zero-shot training pairs the training clips with captions
or descriptions. Every clip of the split must be servable *before* training starts: a missing
description or face file, or a clip that ``finecliper prepare`` found broken, stops the run at once
with the clip ids, never after an epoch of work.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from finecliper.data.dataset import ClipDataset
from finecliper.data.prepare import load_manifest
from finecliper.data.splits import read_split
from finecliper.face.maps_extra import FaceMapsExtra
from finecliper.io import sha256_file
from finecliper.text.desc_cache import read_cache
from finecliper.text.description_extra import DescriptionExtra
from finecliper.train.config import ExperimentConfig

SHOWN = 5  # problems listed in an error message (the rest are counted)


class InputError(ValueError):
    """Inputs of a run that cannot be used: say which clips and what to do, before any training."""


@dataclass
class RunInputs:
    train_extras: list = field(default_factory=list)
    test_extras: list = field(default_factory=list)
    descriptions: dict[str, Any] | None = None  # what the run's summary.json records of the description source
    notes: list[str] = field(default_factory=list)  # warnings met while reading, for the run's log


def read_descriptions(path: str, allow_leaking: bool, notes: list[str]) -> tuple[dict[str, str], dict[str, Any]]:
    """({clip_id: text}, record for summary.json) of a description cache; refuses one that leaks labels."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        header, entries = read_cache(path)
    notes.extend(str(w.message) for w in caught)
    leaks = bool(header.get("leaks_label"))
    if leaks and not allow_leaking:
        raise InputError(f"{path}: these descriptions were generated with each clip's label in the prompt "
                         f"(leaks_label: true in its header), so a model trained or scored on them sees the label; "
                         f"use a label-free cache, or set allow_leaking_descriptions=true to measure the leak")
    record = {"path": str(path), "sha256": sha256_file(path), "backend": header.get("backend"),
              "model_hash": header.get("model_hash"), "prompt_hash": header.get("prompt_hash"),
              "refine_hash": header.get("refine_hash"), "leaks_label": leaks}
    return {k: e["text"] for k, e in entries.items()}, record


def make_inputs(cfg: ExperimentConfig, tokenize_description: Callable, training: bool = True) -> RunInputs:
    """Dataset plug-ins (train, test) for the modalities beyond frames that ``cfg.model`` needs.

    ``tokenize_description(texts, context_length=L)``: the model's Long-CLIP tokenizer.
    """
    run = RunInputs()
    mods = cfg.model.fused_modalities()
    L = cfg.model.desc_context_length
    if cfg.model.needs_maps():
        if not cfg.face_cache:
            raise InputError(f"variant {cfg.model.variant!r} needs face maps: run `finecliper extract` and set face_cache=DIR")
        run.train_extras.append(FaceMapsExtra(cfg.face_cache, cfg.data.image_size))
    if "description" in mods:
        if not cfg.descriptions:
            raise InputError(f"variant {cfg.model.variant!r} needs descriptions: run `finecliper describe` and set descriptions=FILE")
        texts, run.descriptions = read_descriptions(cfg.descriptions, cfg.allow_leaking_descriptions, run.notes)
        run.train_extras.append(DescriptionExtra(texts, tokenize_description, L, source=cfg.descriptions))
    run.test_extras = list(run.train_extras)
    if cfg.model.zero_shot and training:
        # training clips are paired with a caption or description; test clips are scored by video alone
        if cfg.descriptions in (None, "", "captions"):
            records = read_split(cfg.data.dataset, cfg.data.annotations, cfg.data.fold, "train", captions=True,
                                 layout=cfg.data.layout)
            texts, source = {r.clip_id: r.caption for r in records if r.caption}, f"the {cfg.data.dataset} caption files"
            run.descriptions = {"path": None, "backend": "captions (split files)", "leaks_label": False}
        else:
            texts, run.descriptions = read_descriptions(cfg.descriptions, cfg.allow_leaking_descriptions, run.notes)
            source = cfg.descriptions
        run.train_extras.append(DescriptionExtra(texts, tokenize_description, L, source=source))
    return run


def check_datasets(datasets: Sequence[tuple[str, ClipDataset]], manifest: str | None = None,
                   notes: Sequence[str] = ()) -> None:
    """Raise :class:`InputError` naming the clips that a dataset's extras cannot serve, or that the
    ``prepare`` manifest lists with problems. ``datasets``: (split name, dataset) pairs; ``notes``:
    warnings met while reading the inputs, which may explain the problems."""
    problems: list[str] = []
    remedies: list[str] = []
    bad = {p["clip_id"]: p for p in load_manifest(manifest).problems} if manifest else {}
    for split, ds in datasets:
        found = [f"{p} ({split})" for p in _manifest_problems(ds, bad)]
        if found:
            remedies.append(f"fix the clips `finecliper prepare` listed in {manifest} and run prepare again")
        for extra in ds.extras:
            check = getattr(extra, "check", None)
            mine = [f"{p} ({split})" for p in check(ds.records)] if check else []
            if mine and getattr(extra, "remedy", None) and extra.remedy not in remedies:
                remedies.append(extra.remedy)
            found += mine
        problems += found
    if problems:
        more = f" … and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        seen = f" (while reading: {'; '.join(notes)})" if notes else ""
        raise InputError(f"{len(problems)} clip problem(s) found before training: {'; '.join(problems[:SHOWN])}{more}"
                         f"{seen}. To fix: {'; '.join(dict.fromkeys(remedies))}")


def _manifest_problems(ds: ClipDataset, bad: dict[str, dict]) -> list[str]:
    return [f"{r.clip_id}: {bad[r.clip_id]['kind']} ({bad[r.clip_id]['message']})" for r in ds.records if r.clip_id in bad]
