"""Prediction results as JSON, CSV and a rich table.

JSON: ``{"finecliper_version", "checkpoint", "videos": [...], "errors": [{"video", "error"}]}``; per
video its tracks, per track the overall label and probabilities (mean of its windows), the per-frame
face validity (one bool per video frame), and the windows with times, labels and probabilities.
CSV: one row per window plus one row per track (``window`` = "all"), probabilities as ``p_<class>``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from finecliper.predict.pipeline import TrackResult, VideoResult

ROUND = 5


def _probs(classes: list[str], p) -> dict[str, float]:
    return {c: round(float(v), ROUND) for c, v in zip(classes, p)}


def track_to_dict(t: TrackResult, classes: list[str]) -> dict[str, Any]:
    return {
        "track_id": t.track_id, "label": t.label, "probs": _probs(classes, t.probs),
        "first_frame": t.first_frame, "last_frame": t.last_frame, "start_s": t.start_s, "end_s": t.end_s,
        "valid_frames": int(t.face_valid.sum()),
        "face_valid": [bool(v) for v in t.face_valid],
        **({"description": t.description} if t.description is not None else {}),
        "windows": [{
            "index": w.index, "start_frame": w.start_frame, "end_frame": w.end_frame, "start_s": w.start_s,
            "end_s": w.end_s, "label": w.label, "probs": _probs(classes, w.probs), "frames": w.frames,
            "n_valid": w.n_valid, "box": w.box, "weights": {k: round(v, ROUND) for k, v in w.weights.items()},
            **({"description": w.description} if w.description is not None else {}),
            **({"explanation": w.explanation} if w.explanation else {}),
            **({"regions": w.regions} if w.regions else {}),
        } for w in t.windows],
    }


def video_to_dict(r: VideoResult) -> dict[str, Any]:
    return {
        "video": r.video, "variant": r.variant, "fps": r.fps, "num_frames": r.num_frames,
        "frame_size": list(r.frame_size), "classes": r.classes, "message": r.message, "warnings": r.warnings,
        "tracks": [track_to_dict(t, r.classes) for t in r.tracks],
        "seconds": {k: round(v, 4) for k, v in r.seconds.items()},
    }


def results_to_dict(results: list[VideoResult], errors: list[tuple[str, str]], checkpoint: str | None = None) -> dict:
    from finecliper import __version__

    return {"finecliper_version": __version__, "checkpoint": checkpoint,
            "videos": [video_to_dict(r) for r in results],
            "errors": [{"video": v, "error": e} for v, e in errors]}


def csv_text(results: list[VideoResult]) -> str:
    classes: list[str] = []
    for r in results:
        classes += [c for c in r.classes if c not in classes]
    buf = io.StringIO()
    wr = csv.writer(buf, lineterminator="\n")
    wr.writerow(["video", "track_id", "window", "start_s", "end_s", "start_frame", "end_frame", "label", "valid_frames",
                 *[f"p_{c}" for c in classes]])
    for r in results:
        for t in r.tracks:
            rows = [("all", t.start_s, t.end_s, t.first_frame, t.last_frame + 1, t.label, int(t.face_valid.sum()), t.probs)]
            rows += [(w.index, w.start_s, w.end_s, w.start_frame, w.end_frame, w.label, w.n_valid, w.probs) for w in t.windows]
            for win, s0, s1, f0, f1, label, nv, p in rows:
                pd = dict(zip(r.classes, p))
                wr.writerow([r.video, t.track_id, win, s0, s1, f0, f1, label, nv,
                             *[("" if c not in pd else f"{pd[c]:.{ROUND}f}") for c in classes]])
    return buf.getvalue()


def write_results(path: str | Path, results: list[VideoResult], errors: list[tuple[str, str]],
                  checkpoint: str | None = None) -> None:
    """``.json`` or ``.csv`` by the suffix, written atomically."""
    from finecliper.io import atomic_write, write_json

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        write_json(path, results_to_dict(results, errors, checkpoint))
    elif suffix == ".csv":
        with atomic_write(path, "w") as f:
            f.write(csv_text(results))
    else:
        raise ValueError(f"--out {path}: use a .json or .csv file name")


def print_result(console, r: VideoResult, top: int = 3, max_windows: int = 12) -> None:
    from rich.table import Table

    for w in r.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if not r.tracks:
        console.print(f"[bold]{r.video}[/]: {r.message}")
        return
    table = Table(title=f"{r.video} · {r.num_frames} frames @ {r.fps:g} fps · {r.variant}", title_justify="left")
    for col, just in (("track", "right"), ("time (s)", "left"), ("face frames", "right"), ("label", "left"),
                      (f"top {top}", "left")):
        table.add_column(col, justify=just)
    for t in r.tracks:
        def top_str(p):
            order = sorted(range(len(p)), key=lambda c: -p[c])[:top]
            return "  ".join(f"{r.classes[c]} {p[c]:.2f}" for c in order)

        span = t.last_frame - t.first_frame + 1
        table.add_row(str(t.track_id), f"{t.start_s:.2f}–{t.end_s:.2f}", f"{int(t.face_valid.sum())}/{span}",
                      f"[bold]{t.label}[/]", top_str(t.probs))
        if len(t.windows) > 1:
            shown = t.windows if len(t.windows) <= max_windows else t.windows[:max_windows]
            for w in shown:
                table.add_row("", f"  {w.start_s:.2f}–{w.end_s:.2f}", f"{w.n_valid}/{len(w.frames)}", w.label, top_str(w.probs))
            if len(shown) < len(t.windows):
                table.add_row("", f"  … {len(t.windows) - len(shown)} more windows", "", "", "")
    console.print(table)
    for t in r.tracks:
        if t.description is not None:
            console.print(f"track {t.track_id}: [italic]{t.description}[/]")
