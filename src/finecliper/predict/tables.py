"""Prediction results as tables, as the field's per-frame tools (py-feat, OpenFace) give them.

``frames``: one row per (frame, face): every frame of the video appears, a frame held by no face track
once with an empty ``face_id`` (a video without any face is N such rows, never a missing one).

    video, frame, time_s, shot, face_id, x, y, w, h, confidence, face_valid, label, p_<class>...

``time_s``: the frame's presentation time (pts) in seconds from the first frame. ``x, y, w, h``: the
detected face box in frame pixels (top-left corner and size), empty where the face was not detected in
that frame (``face_valid`` False, e.g. a moment it was lost inside its track). ``p_<class>``: the mean
of the probabilities of the track's windows whose span holds the frame (windows overlap by window -
stride; a frame at the edge of the track is held by one window, most by two); ``label`` their arg-max.

``windows``: one row per window (``start_frame``/``end_frame``: end exclusive; ``start_s``/``end_s``:
start of the first frame, end of the last), its probabilities, ``w_<modality>`` fusion weights, the
frames the model read and how many had the face. ``tracks``: one row per face track with its overall
probabilities (mean of its windows'). A video without a face track gets one row in each with an empty
``face_id`` and the reason in ``message``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from finecliper import __version__
from finecliper.io import atomic_write, write_json
from finecliper.predict.pipeline import VideoResult, frame_probs


class PredictionFrame(pd.DataFrame):
    """The per-frame table (a ``pandas.DataFrame``) with the window and track tables beside it.

    ``.windows``, ``.tracks``: DataFrames; ``.videos``: one dict per video (frame rate, size, classes,
    scorer, warnings, message); ``.save(path)``: .json (every table) or .csv (this table, plus
    ``<stem>.windows.csv`` and ``<stem>.tracks.csv``).
    """

    _metadata = ["windows", "tracks", "videos"]

    @property
    def _constructor(self):
        return PredictionFrame

    def save(self, path: str | Path) -> list[Path]:
        return save_tables(path, self)


def _class_columns(classes: Sequence[str], probs: np.ndarray) -> dict[str, Any]:
    return {f"p_{c}": probs[:, k] for k, c in enumerate(classes)}


def frames_table(r: VideoResult) -> pd.DataFrame:
    n = r.num_frames
    shot_of = np.zeros(n, np.int64)
    for s, (a, b) in enumerate(r.shots or [(0, n)]):
        shot_of[a:b] = s
    parts, held = [], np.zeros(n, bool)
    for t in r.tracks:
        idx = np.arange(t.start_frame, t.end_frame)
        held[idx] = True
        valid = t.face_valid[idx]
        b = t.boxes[idx].astype(np.float64)
        b[~valid] = np.nan
        p = frame_probs(t, n)[idx]
        label = np.where(np.isnan(p).any(1), None, np.asarray(r.classes, object)[np.nan_to_num(p, nan=-1).argmax(1)])
        parts.append(pd.DataFrame({
            "frame": idx, "face_id": t.track_id, "x": b[:, 0], "y": b[:, 1], "w": b[:, 2] - b[:, 0], "h": b[:, 3] - b[:, 1],
            "confidence": np.where(valid, t.confidence[idx], np.nan), "face_valid": valid, "label": label,
            **_class_columns(r.classes, p)}))
    empty = np.flatnonzero(~held)
    if len(empty):
        nan = np.full(len(empty), np.nan)
        parts.append(pd.DataFrame({"frame": empty, "face_id": pd.NA, "x": nan, "y": nan, "w": nan, "h": nan,
                                   "confidence": nan, "face_valid": False, "label": None,
                                   **{f"p_{c}": nan for c in r.classes}}))
    df = pd.concat(parts, ignore_index=True).sort_values(["frame", "face_id"], kind="stable", ignore_index=True)
    df.insert(0, "video", r.video)
    df.insert(2, "time_s", np.round(r.times[df["frame"].to_numpy()], 6))
    df.insert(3, "shot", shot_of[df["frame"].to_numpy()])
    df["face_id"] = df["face_id"].astype("Int64")
    df["label"] = df["label"].astype("string")
    return df


def windows_table(r: VideoResult) -> pd.DataFrame:
    rows = []
    for t in r.tracks:
        for w in t.windows:
            rows.append({"video": r.video, "face_id": t.track_id, "window": w.index, "start_frame": w.start_frame,
                         "end_frame": w.end_frame, "start_s": w.start_s, "end_s": w.end_s, "n_frames": len(w.frames),
                         "n_valid": w.n_valid, "label": w.label, **{f"p_{c}": p for c, p in zip(r.classes, w.probs)},
                         **{f"w_{m}": v for m, v in w.weights.items()}, "description": w.description,
                         "explanation": w.explanation, "attention": w.attention, "message": None})
    if not rows:
        rows.append({"video": r.video, "face_id": pd.NA, "label": None, "message": r.message})
    return _typed(pd.DataFrame(rows))


def tracks_table(r: VideoResult) -> pd.DataFrame:
    rows = [{"video": r.video, "face_id": t.track_id, "shot": t.shot, "start_frame": t.start_frame,
             "end_frame": t.end_frame, "start_s": t.start_s, "end_s": t.end_s, "n_frames": t.end_frame - t.start_frame,
             "n_valid": int(t.face_valid.sum()), "coverage": t.coverage, "label": t.label,
             **{f"p_{c}": p for c, p in zip(r.classes, t.probs)}, "windows": len(t.windows),
             "description": t.description, "message": None} for t in r.tracks]
    if not rows:
        rows.append({"video": r.video, "face_id": pd.NA, "label": None, "message": r.message})
    return _typed(pd.DataFrame(rows))


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df["face_id"] = df["face_id"].astype("Int64")
    for col in ("label", "message", "description", "explanation", "attention"):
        if col in df:
            df[col] = df[col].astype("string")
    return df


def video_info(r: VideoResult) -> dict[str, Any]:
    return {"video": r.video, "scorer": r.scorer, "model": r.model, "fps": r.fps, "num_frames": r.num_frames,
            "duration_s": round(r.duration, 6), "frame_size": list(r.frame_size), "classes": r.classes,
            "times_from_pts": r.times_from_pts, "shots": [list(s) for s in r.shots],
            "rejected_tracks": r.rejected_tracks, "message": r.message, "warnings": r.warnings,
            "seconds": {k: round(v, 4) for k, v in r.seconds.items()}}


def to_frame(results: VideoResult | Sequence[VideoResult]) -> PredictionFrame:
    """The three tables of one or several videos (class columns: the union, in first-seen order)."""
    results = [results] if isinstance(results, VideoResult) else list(results)
    cat = (lambda dfs: pd.concat(dfs, ignore_index=True)) if results else (lambda dfs: pd.DataFrame())
    out = PredictionFrame(cat([frames_table(r) for r in results]))
    out.windows = cat([windows_table(r) for r in results])
    out.tracks = cat([tracks_table(r) for r in results])
    out.videos = [video_info(r) for r in results]
    return out


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN and NA become null)."""
    return json.loads(df.to_json(orient="records", double_precision=6)) if len(df) else []


def save_tables(path: str | Path, tables: PredictionFrame, errors: Sequence[tuple[str, str]] = (),
                extra: dict[str, Any] | None = None) -> list[Path]:
    """Write .json (every table, per video) or .csv (+ .windows.csv, .tracks.csv) atomically; returns the files."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        videos = []
        for v in tables.videos:
            sel = {name: records(df[df["video"] == v["video"]]) if len(df) else []
                   for name, df in (("frames", tables), ("windows", tables.windows), ("tracks", tables.tracks))}
            videos.append({**v, **sel})
        write_json(path, {"finecliper_version": __version__, **(extra or {}), "videos": videos,
                          "errors": [{"video": v, "error": e} for v, e in errors]})
        return [path]
    if path.suffix.lower() == ".csv":
        out = []
        for p, df in csv_paths(path).items():
            with atomic_write(p, "w") as f:
                pd.DataFrame(df(tables)).to_csv(f, index=False, lineterminator="\n")
            out.append(p)
        return out
    raise ValueError(f"{path}: use a .json or .csv file name")


def csv_paths(path: str | Path) -> dict[Path, Any]:
    """The files a .csv result is written to, and the table each holds."""
    path = Path(path)
    return {path: lambda t: t, path.with_name(f"{path.stem}.windows.csv"): lambda t: t.windows,
            path.with_name(f"{path.stem}.tracks.csv"): lambda t: t.tracks}
