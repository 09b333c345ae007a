"""Prediction results on disk (JSON, CSV: ``tables``) and on the terminal (a rich table and a summary line)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from finecliper.predict.pipeline import VideoResult
from finecliper.predict.tables import csv_paths, save_tables, to_frame


def result_files(path: str | Path) -> list[Path]:
    """Every file ``--out PATH`` writes (.json: one; .csv: the frames, windows and tracks tables)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return list(csv_paths(path))
    if path.suffix.lower() == ".json":
        return [path]
    raise ValueError(f"--out {path}: use a .json or .csv file name")


def write_results(path: str | Path, results: Sequence[VideoResult], errors: Sequence[tuple[str, str]] = (),
                  model: dict[str, Any] | None = None) -> list[Path]:
    """``.json`` or ``.csv`` by the suffix (see ``tables``), written atomically; returns the files written."""
    return save_tables(path, to_frame(list(results)), errors, {"model": model} if model else None)


def summary_line(r: VideoResult) -> str:
    """``video: N frames (D s) in T s: F frames/s, R x real time``."""
    total = r.seconds.get("total") or sum(r.seconds.values()) or 1e-9
    return (f"{r.video}: {r.num_frames} frames ({r.duration:.1f} s of video) in {total:.1f} s: "
            f"{r.num_frames / total:.1f} frames/s, {r.duration / total:.2f}x real time")


def print_result(console, r: VideoResult, top: int = 3, max_windows: int = 12) -> None:
    """The tracks and windows of one video as a table (warnings go elsewhere: the caller prints them)."""
    from rich.table import Table

    if not r.tracks:
        console.print(f"[bold]{r.video}[/]: {r.message}", soft_wrap=True)
        return
    table = Table(title=f"{r.video} · {r.num_frames} frames · {r.duration:.1f} s · {r.scorer}", title_justify="left")
    for col, just in (("face", "right"), ("time (s)", "left"), ("face frames", "right"), ("label", "left"),
                      (f"top {top}", "left")):
        table.add_column(col, justify=just)

    def top_str(p):
        order = sorted(range(len(p)), key=lambda c: -p[c])[:top]
        return "  ".join(f"{r.classes[c]} {p[c]:.2f}" for c in order)

    for t in r.tracks:
        table.add_row(str(t.track_id), f"{t.start_s:.2f}–{t.end_s:.2f}",
                      f"{int(t.face_valid.sum())}/{t.end_frame - t.start_frame}", f"[bold]{t.label}[/]", top_str(t.probs))
        if len(t.windows) > 1:
            shown = t.windows[:max_windows]
            for w in shown:
                table.add_row("", f"  {w.start_s:.2f}–{w.end_s:.2f}", f"{w.n_valid}/{len(w.frames)}", w.label, top_str(w.probs))
            if len(shown) < len(t.windows):
                table.add_row("", f"  … {len(t.windows) - len(shown)} more windows", "", "", "")
    console.print(table)
    for t in r.tracks:
        if t.description is not None:
            console.print(f"face {t.track_id}: [italic]{t.description}[/]", soft_wrap=True)
