"""`finecliper prepare`: check every clip of the split(s) against disk and write a manifest.

Nothing is dropped silently: each problem (missing clip, empty folder, unreadable frame, corrupt
video, frame count differing from the annotation, too few frames, conflicting labels across folds)
is listed in the manifest; ``strict`` turns any problem into an error. The manifest also records,
per clip, the path found on disk and its frame count, so training need not scan again.
"""
from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from finecliper.data import labels as L
from finecliper.data.frames import FrameError, clips_root, open_frames, resolve_clip_path
from finecliper.data.sampling import sample_segment_indices
from finecliper.data.splits import SPLITS, ClipRecord, class_counts, locate_split, read_split
from finecliper.io import sha256_file, write_json

MANIFEST_FORMAT = "finecliper-manifest/1"
CHECKS = ("count", "sampled", "all")


class ManifestError(ValueError):
    pass


@dataclass
class ClipCheck:
    clip_id: str
    path: str | None            # relative to the clips root, as found on disk
    num_frames: int | None
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, message)


def check_clip(root: Path, rec: ClipRecord, *, check: str = "sampled", min_frames: int = 1,
               num_segments: int = 16) -> ClipCheck:
    """Find ``rec`` under ``root``, count its frames, and decode what ``check`` asks for."""
    try:
        path = resolve_clip_path(root, rec)
    except FrameError as e:
        return ClipCheck(rec.clip_id, None, None, [("missing", str(e))])
    rel = path.relative_to(root).as_posix()
    try:
        src = open_frames(path)
    except FrameError as e:
        kind = "empty" if "no jpg" in str(e) or "no frames" in str(e) else "unreadable"
        return ClipCheck(rec.clip_id, rel, None, [(kind, str(e))])
    n = src.num_frames
    res = ClipCheck(rec.clip_id, rel, n)
    if rec.num_frames is not None and rec.num_frames != n:
        res.problems.append(("frame_count_mismatch", f"{path}: annotation says {rec.num_frames} frames, disk has {n}"))
    if n < min_frames:
        res.problems.append(("too_few_frames", f"{path}: {n} frames, fewer than min_frames={min_frames}"))
    if check != "count":
        # sampled: the eval frames plus the last one (training may draw it; catches short videos)
        idx = (np.arange(n) if check == "all"
               else np.unique(np.append(sample_segment_indices(n, num_segments, train=False), n - 1)))
        try:
            for chunk in np.array_split(idx, max(1, len(idx) // 64)):
                src.read(chunk)
        except (FrameError, IndexError) as e:
            res.problems.append(("unreadable", str(e)))
    return res


def _frame_stats(counts: list[int], num_segments: int) -> dict[str, Any]:
    if not counts:
        return {"clips": 0}
    return {"clips": len(counts), "min": min(counts), "max": max(counts),
            "mean": round(statistics.fmean(counts), 3), "median": statistics.median(counts),
            f"shorter_than_{num_segments}": sum(c < num_segments for c in counts)}


def prepare(dataset: str, annotations: str | Path, data_root: str | Path, variant: str, *,
            folds: Iterable[int] | str = "all", layout: str = "auto", label_base: int | str = "auto",
            captions: bool = False, compound: bool = False, check: str = "sampled", min_frames: int = 1,
            num_segments: int = 16, workers: int = 2, progress=None) -> dict[str, Any]:
    """Build the manifest dict (does not write it). ``progress(done, total)`` is called as clips finish."""
    from finecliper import __version__

    ds = L.dataset_key(dataset)
    if check not in CHECKS:
        raise ValueError(f"check must be one of {CHECKS}, got {check!r}")
    if folds == "all":
        fold_list = L.folds(ds)
    else:
        fold_list = [int(f) for f in ([folds] if isinstance(folds, (int, str)) else folds)]
    names = L.classes(ds)
    kw = dict(layout=layout, captions=captions, compound=compound)
    splits: dict[str, Any] = {}
    members: dict[str, list[str]] = {}
    unique: dict[str, ClipRecord] = {}
    conflicts: list[tuple[str, str]] = []
    for fold in fold_list:
        for split in SPLITS:
            key = f"fold{fold}/{split}"
            sf = locate_split(ds, annotations, fold, split, **kw)
            recs = read_split(ds, annotations, fold, split, label_base=label_base, **kw)
            cc = class_counts(recs, len(names))
            splits[key] = {"file": str(sf.path), "layout": sf.layout, "sha256": sha256_file(sf.path),
                           "count": len(recs), "per_class": dict(zip(names, cc))}
            for r in recs:
                members.setdefault(r.clip_id, []).append(key)
                old = unique.setdefault(r.clip_id, r)
                if old.labels != r.labels:
                    conflicts.append((r.clip_id, f"clip {r.clip_id} has labels {old.labels} and {r.labels} "
                                                 f"in different split files ({key})"))
    root = clips_root(data_root, variant)
    recs = list(unique.values())
    results: list[ClipCheck] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # cv2/PyAV release the GIL
        for i, res in enumerate(pool.map(lambda r: check_clip(root, r, check=check, min_frames=min_frames,
                                                              num_segments=num_segments), recs), 1):
            results.append(res)
            if progress:
                progress(i, len(recs))
    problems = []
    for res in results:
        for kind, msg in res.problems:
            problems.append({"clip_id": res.clip_id, "path": res.path, "kind": kind, "message": msg,
                             "splits": members[res.clip_id]})
    for cid, msg in conflicts:
        problems.append({"clip_id": cid, "path": None, "kind": "label_conflict", "message": msg,
                         "splits": members[cid]})
    counts = [r.num_frames for r in results if r.num_frames is not None]
    by_kind: dict[str, int] = {}
    for p in problems:
        by_kind[p["kind"]] = by_kind.get(p["kind"], 0) + 1
    try:
        rel_root = root.relative_to(Path(data_root)).as_posix()
    except ValueError:
        rel_root = str(root)
    return {
        "format": MANIFEST_FORMAT,
        "finecliper_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": ds,
        "variant": variant,
        "annotations_root": str(annotations),   # as given (relative stays relative)
        "data_root": str(data_root),
        "clips_root": rel_root,                 # relative to data_root
        "options": {"layout": layout, "label_base": str(label_base), "captions": captions,
                    "compound": compound, "check": check, "min_frames": min_frames, "num_segments": num_segments},
        "classes": names,
        "splits": splits,
        "frame_counts": _frame_stats(counts, num_segments),
        "problem_counts": by_kind,
        "problems": problems,
        "clips": {r.clip_id: {"path": r.path, "num_frames": r.num_frames} for r in results},
    }


def manifest_filename(dataset: str, variant: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in (variant or "root"))
    return f"manifest_{L.dataset_key(dataset)}_{safe}.json"


def write_manifest(manifest: dict[str, Any], out_dir: str | Path) -> Path:
    path = Path(out_dir) / manifest_filename(manifest["dataset"], manifest["variant"])
    write_json(path, manifest)
    return path


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any]

    @property
    def dataset(self) -> str:
        return self.data["dataset"]

    @property
    def problems(self) -> list[dict[str, Any]]:
        return self.data["problems"]

    def frame_counts(self) -> dict[str, int | None]:
        return {k: v["num_frames"] for k, v in self.data["clips"].items()}

    def clip_paths(self) -> dict[str, str]:
        """clip_id -> path relative to the clips root, for clips found on disk."""
        return {k: v["path"] for k, v in self.data["clips"].items() if v["path"]}

    def bad_clip_ids(self) -> set[str]:
        return {p["clip_id"] for p in self.problems}


def load_manifest(path: str | Path) -> Manifest:
    import json

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}. Create it with `finecliper prepare ... --out DIR`.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}: not valid JSON ({e}); re-run `finecliper prepare`") from e
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: not a finecliper manifest (format {data.get('format') if isinstance(data, dict) else None!r}, "
                            f"expected {MANIFEST_FORMAT!r}); re-run `finecliper prepare`")
    for key in ("dataset", "variant", "splits", "clips", "problems"):
        if key not in data:
            raise ManifestError(f"{path}: manifest lacks {key!r}; re-run `finecliper prepare`")
    return Manifest(path, data)


def print_summary(manifest: dict[str, Any], console=None) -> None:
    """A rich table: clips per split and class, frame-count stats, problems by kind."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    names = manifest["classes"]
    t = Table(title=f"{manifest['dataset']} / {manifest['variant']}")
    t.add_column("split")
    t.add_column("clips", justify="right")
    for n in names:
        t.add_column(L.SHORT_NAMES[n], justify="right")
    for key, s in manifest["splits"].items():
        t.add_row(key, str(s["count"]), *(str(s["per_class"][n]) for n in names))
    console.print(t)
    fc = manifest["frame_counts"]
    console.print("frames per clip: " + ", ".join(f"{k} {v}" for k, v in fc.items()))
    if manifest["problems"]:
        p = Table(title=f"{len(manifest['problems'])} problems")
        p.add_column("kind")
        p.add_column("clips", justify="right")
        p.add_column("example")
        for kind, n in manifest["problem_counts"].items():
            ex = next(x["message"] for x in manifest["problems"] if x["kind"] == kind)
            p.add_row(kind, str(n), ex)
        console.print(p)
    else:
        console.print("[green]no problems found[/green]")
