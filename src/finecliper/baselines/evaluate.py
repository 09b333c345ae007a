"""Score a static baseline on a DFER test split exactly as finecliper is scored.

Same clips (the split reader), same frames (the evaluation sampler: ``num_frames`` segment centres,
``data.pad`` for short clips), same metrics and report files (``write_fold_report``: per-class table,
confusion CSV/PNG, JSON summary) plus ``predictions.json``. Faces: the boxes of the face cache
(``finecliper extract``) at the sampled frames, or the face mesh run on the sampled frames when there is
no cache; frames without a valid face are left out of the clip's vote (see ``baselines.base``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from finecliper.baselines import make_baseline
from finecliper.baselines.base import (NO_PREDICTION_NAME, FaceCropConfig, FrameClassifier, aggregate_clip,
                                       crop_faces, extended_confusion, fold_confusion, map_to_dataset,
                                       predict_labels, score_clips, unpredictable_classes)
from finecliper.data import labels as L
from finecliper.data.dataset import DataConfig
from finecliper.data.frames import open_frames, resolve_clip_path
from finecliper.data.prepare import load_manifest
from finecliper.data.sampling import sample_segment_indices
from finecliper.data.splits import ClipRecord, read_split
from finecliper.eval.metrics import summarize_folds
from finecliper.eval.report import markdown_table, plot_confusion, write_confusion_csv, write_fold_report
from finecliper.face.cache import FaceCacheError, cache_path, load_face_cache, read_manifest
from finecliper.face.facemesh import FaceMeshAnalyser
from finecliper.io import write_json

__all__ = ["split_test_clips", "FaceBoxSource", "classify_clip", "evaluate_baseline", "write_baseline_report",
           "side_by_side", "side_by_side_rows", "clip_set_digest", "evaluate_baseline_folds"]


def split_test_clips(cfg: DataConfig, fold: int) -> tuple[list[ClipRecord], Callable[[ClipRecord], Path]]:
    """The test clips of ``fold`` and a function giving each clip's frames path (manifest first)."""

    if cfg.compound:
        raise ValueError("baseline evaluation scores single-label clips; set data.compound=false")
    recs = read_split(cfg.dataset, cfg.annotations, fold, "test", layout=cfg.layout, label_base=cfg.label_base,
                      captions=cfg.captions, compound=False)
    paths: dict[str, str] = {}
    if cfg.manifest:

        paths = load_manifest(cfg.manifest).clip_paths()
    root = cfg.clips_root()

    def path_of(rec: ClipRecord) -> Path:
        rel = paths.get(rec.clip_id)
        return root / rel if rel else resolve_clip_path(root, rec)

    return recs, path_of


class FaceBoxSource:
    """Face boxes (T, 4) and validity (T,) for sampled frames: from a face cache, else from the face mesh."""

    def __init__(self, face_cache: str | Path | None = None):
        self.face_cache = Path(face_cache) if face_cache else None
        self._analyser = None
        if self.face_cache is not None:

            self.manifest = read_manifest(self.face_cache)  # fails early on a folder that is not a cache

    def describe(self) -> str:
        return str(self.face_cache) if self.face_cache else "facemesh (static mode on the sampled frames)"

    def boxes(self, clip_id: str, frames: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (T, H, W, 3) read at ``indices`` -> boxes (T, 4) float32, valid (T,) bool."""
        if self.face_cache is None:
            if self._analyser is None:
                self._analyser = FaceMeshAnalyser()
            track = self._analyser.analyse(frames, video=False)  # sampled frames are not consecutive
            return track.boxes, track.valid

        path = cache_path(self.face_cache, clip_id)
        if not path.is_file():
            raise FaceCacheError(f"no face cache for clip {clip_id!r} in {self.face_cache} (expected {path}); run "
                                 f"`finecliper extract` on this dataset with --out {self.face_cache}, or evaluate "
                                 f"without a cache")
        track = load_face_cache(path)
        if tuple(track.frame_hw) != tuple(frames.shape[1:3]):
            raise FaceCacheError(f"{path}: the cache refers to {track.frame_hw[0]}x{track.frame_hw[1]} frames but "
                                 f"the clip's frames are {frames.shape[1]}x{frames.shape[2]}; use a cache built from these frames "
                                 f"(a --raw cache refers to its own face crops)")
        if len(indices) and int(np.max(indices)) >= len(track):
            raise FaceCacheError(f"{path}: the cache has {len(track)} frames but frame {int(np.max(indices))} was "
                                 f"asked for; "
                                 f"the clip changed since extraction: delete this file and re-run `finecliper extract`")
        sel = track.select(indices)
        return sel.boxes, sel.valid

    def close(self) -> None:
        if self._analyser is not None:
            self._analyser.close()
            self._analyser = None


def classify_clip(classifier: FrameClassifier, frames: np.ndarray, boxes: np.ndarray, valid: np.ndarray,
                  crop: FaceCropConfig = FaceCropConfig(), mode: str = "mean") -> np.ndarray:
    """frames (T, H, W, 3) + boxes (T, 4) + valid (T,) -> (C,) clip distribution over the baseline's classes
    (all-NaN when no frame is valid). Only valid frames are cropped and classified."""
    valid = np.asarray(valid, bool)
    probs = np.full((len(frames), len(classifier.class_names)), np.nan)
    if valid.any():
        crops = crop_faces(frames[valid], np.asarray(boxes)[valid], crop)  # (V, S, S, 3)
        probs[valid] = classifier.predict_proba(crops)
    return aggregate_clip(probs, valid, mode)


def clip_set_digest(clip_ids) -> str:
    """Short hash of the evaluated clip ids: two reports with the same digest scored the same clips."""
    return hashlib.sha256("\n".join(sorted(map(str, clip_ids))).encode()).hexdigest()[:16]


def write_baseline_report(out_dir: str | Path, name: str, y_true, y_pred, dataset: str,
                          extra: dict[str, Any] | None = None, title: str | None = None) -> dict[str, Any]:
    """``write_fold_report`` for predictions that may include NO_PREDICTION (-1).

    The Table-2 row and the summary's UAR/WAR/recalls count no-prediction clips as misses; when there
    are any, the confusion CSV/PNG and the summary's ``confusion`` get a "no prediction" column.
    """

    names = L.classes(dataset)
    k = len(names)
    ext = extended_confusion(y_true, y_pred, k)           # (K+1, K+1)
    s = score_clips(y_true, y_pred, k)
    info = {"n_no_prediction": s["n_no_prediction"],
            "no_prediction_per_class": dict(zip(names, s["no_prediction_per_class"])), **(extra or {})}
    if s["n_no_prediction"]:
        info.update(confusion=s["confusion"], confusion_columns=[*names, NO_PREDICTION_NAME])
    summary = write_fold_report(out_dir, name, fold_confusion(ext), dataset, extra=info, title=title)
    if s["n_no_prediction"]:
        out = Path(out_dir)
        write_confusion_csv(out / f"{name}_confusion.csv", ext, [*names, NO_PREDICTION_NAME])
        plot_confusion(out / f"{name}_confusion.png", ext, [*names, NO_PREDICTION_NAME], title=title or name)
    return summary


def evaluate_baseline(classifier: FrameClassifier, data_cfg: DataConfig, fold: int, face_cache: str | None,
                      out_dir: str | Path, num_frames: int = 16, mode: str = "mean",
                      crop: FaceCropConfig | None = None, name: str = "test",
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Score ``classifier`` on the test split of ``fold``; write the report into ``out_dir``.

    Returns the JSON summary plus ``fold`` (``uar``, ``war``, ``n``, ``per_class_recall``,
    ``unpredictable_classes``, ``n_no_prediction``, …).
    """

    crop = crop or FaceCropConfig()
    cfg = dataclasses.replace(data_cfg, fold=fold)
    dataset = L.dataset_key(cfg.dataset)
    classes = L.classes(dataset)
    recs, path_of = split_test_clips(cfg, fold)
    boxes_src = FaceBoxSource(face_cache)
    t0 = time.perf_counter()
    clip_probs, n_valid = [], []
    try:
        for i, rec in enumerate(recs):
            src = open_frames(path_of(rec))
            idx = sample_segment_indices(src.num_frames, num_frames, train=False, pad=cfg.pad)  # (T,)
            frames = src.read(idx)                                                                 # (T, H, W, 3)
            boxes, valid = boxes_src.boxes(rec.clip_id, frames, idx)
            p = classify_clip(classifier, frames, boxes, valid, crop, mode)                        # (C,)
            clip_probs.append(map_to_dataset(p, classifier.class_names, classifier.mapping, classes))  # (K,)
            n_valid.append(int(np.count_nonzero(valid)))
            if progress is not None:
                progress(i + 1, len(recs))
    finally:
        boxes_src.close()
    seconds = time.perf_counter() - t0
    probs = np.stack(clip_probs)                                                                   # (N, K)
    y_true = np.array([r.label for r in recs], np.int64)
    y_pred = predict_labels(probs)
    clip_ids = [r.clip_id for r in recs]
    extra = {"fold": fold, "baseline": classifier.describe(), "mode": mode, "num_frames": num_frames,
             "pad": cfg.pad, "variant": cfg.variant, "face_source": boxes_src.describe(),
             "crop": dataclasses.asdict(crop),
             "unpredictable_classes": unpredictable_classes(classifier.class_names, classifier.mapping, classes),
             "frames_with_face": float(np.sum(n_valid) / (num_frames * len(recs))),
             "clip_set": clip_set_digest(clip_ids), "seconds": round(seconds, 3),
             "clips_per_s": round(len(recs) / seconds, 3) if seconds > 0 else None}
    summary = write_baseline_report(out_dir, name, y_true, y_pred, dataset, extra,
                                    title=f"{classifier.name} baseline (static, per frame) · {dataset} fold {fold} {name}")
    rounded = [[None if math.isnan(x) else round(float(x), 5) for x in row] for row in probs]
    write_json(Path(out_dir) / "predictions.json",
               {"classes": classes, "clip_ids": clip_ids, "labels": y_true.tolist(), "preds": y_pred.tolist(),
                "probs": rounded, "valid_frames": n_valid})
    return summary


def _recalls(summary: Mapping[str, Any], classes: list[str]) -> list[Any]:
    rec = summary.get("per_class_recall")
    if isinstance(rec, Mapping):
        vals = [rec.get(c) for c in classes]
    elif isinstance(rec, (list, tuple)) and len(rec) == len(classes):
        vals = list(rec)
    else:
        return ["-"] * len(classes)
    return ["-" if v is None else round(100 * float(v), 2) for v in vals]


def _metric(v: Any) -> Any:
    if isinstance(v, Mapping):  # summarize_folds: {'mean', 'std', ...}
        return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"
    return round(100 * float(v), 2)


def side_by_side_rows(results: Mapping[str, Mapping[str, Any]],
                      dataset: str | None = None) -> tuple[list[str], list[list[Any]], list[str]]:
    """{method: summary} -> (header, rows, notes) in the Table-2 layout (per-class recall %, UAR, WAR, clips).

    Summaries are those of ``write_fold_report`` / ``evaluate_baseline`` (one evaluation each) or
    ``summarize_folds`` results (UAR/WAR as mean ± std, no per-class cells). Refuses summaries that
    scored different clip sets (``n`` or ``clip_set`` differ). Notes name each method's unpredictable
    classes and no-prediction clips.
    """
    if not results:
        raise ValueError("side_by_side needs at least one result")
    ds = {L.dataset_key(s["dataset"]) for s in results.values() if "dataset" in s}
    if dataset is not None:
        ds.add(L.dataset_key(dataset))
    if len(ds) != 1:
        raise ValueError(f"results come from different (or unnamed) datasets: {sorted(ds) or 'none given'}; "
                         f"pass dataset= when the summaries do not name it")
    ds_name = ds.pop()
    for key in ("n", "clip_set"):
        seen = {m: s[key] for m, s in results.items() if key in s}
        if len(set(seen.values())) > 1:
            raise ValueError(f"results were not computed on the same clips ({key}: {seen})")
    classes = L.classes(ds_name)
    header = ["Method", *L.short_names(ds_name), "UAR", "WAR", "clips"]
    rows, notes = [], []
    for method, s in results.items():
        rows.append([method, *_recalls(s, classes), _metric(s["uar"]), _metric(s["war"]), s.get("n", "-")])
        if s.get("unpredictable_classes"):
            notes.append(f"{method} cannot predict {', '.join(s['unpredictable_classes'])}: those clips count as misses.")
        if s.get("n_no_prediction"):
            notes.append(f"{method}: {s['n_no_prediction']} clips without a detected face count as misses.")
    return header, rows, notes


def side_by_side(results: Mapping[str, Mapping[str, Any]], dataset: str | None = None) -> str:
    """``side_by_side_rows`` as a Markdown table, its notes listed below it."""

    header, rows, notes = side_by_side_rows(results, dataset)
    text = markdown_table(header, rows)
    return text + ("\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "")


def evaluate_baseline_folds(baseline: str, data_cfg: DataConfig, face_cache: str | None, folds: list[int],
                            out: str | None, mode: str = "mean",
                            echo: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """`finecliper evaluate --baseline NAME`: one report per fold (the same layout as a checkpoint's),
    plus ``summary.json`` (mean ± std over folds) when several folds are scored.

    ``out``: '{fold}' in it is replaced per fold; without it, several folds go to ``out/fold_<k>``.
    Default: ``runs/baseline_<NAME>/fold_<k>``.
    """
    clf = make_baseline(baseline)
    results = []
    for k in folds:
        if out is None:
            d = Path("runs") / f"baseline_{baseline}" / f"fold_{k}"
        else:
            d = Path(out.replace("{fold}", str(k)))
            if len(folds) > 1 and "{fold}" not in out:
                d = d / f"fold_{k}"
        r = evaluate_baseline(clf, data_cfg, k, face_cache, d, num_frames=data_cfg.num_frames, mode=mode)
        results.append(r)
        miss = f", {r['n_no_prediction']} without a face" if r["n_no_prediction"] else ""
        echo(f"{baseline} fold {k}: UAR {100 * r['uar']:.2f}  WAR {100 * r['war']:.2f}  ({r['n']} clips{miss}) -> {d}")
    if len(results) > 1:
        s = summarize_folds(results)
        echo(f"{baseline} mean over {len(results)} folds: UAR {100 * s['uar']['mean']:.2f} ± {100 * s['uar']['std']:.2f}"
             f"  WAR {100 * s['war']['mean']:.2f} ± {100 * s['war']['std']:.2f}")
        root = Path(out.replace("{fold}", "all")) if out else Path("runs") / f"baseline_{baseline}"
        write_json(root / "summary.json", {"per_fold": results, "dataset": results[0]["dataset"], **s})
    return results
