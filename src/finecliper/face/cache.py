"""The face cache written by ``finecliper extract``: one compressed ``.npz`` per clip + ``cache_manifest.json``.

Layout of ``DIR``:
    cache_manifest.json        extractor identity: backend, library version, parameters, layout digest, hash
    <clip_id>.npz              one per clip (clip ids with '/' make sub-folders)

Per-clip arrays (T = every frame of the clip):
    landmarks   (T, 68, 2) float16 (float32 if a frame side exceeds 1024 px: float16 keeps <= 0.5 px there)
    parsing     (T, H', W') uint8 LaPa ids covering the whole frame, longer side = parsing_size (224)
    boxes (T, 4) float32, valid (T,) bool, confidence (T,) float32, n_faces (T,) int16, reasons (T,) uint8
    frame_hw (2,) int32          size of the frames the coordinates refer to (the crops for --raw)
    extractor_hash, clip_id      str
    crop_centres (T, 2), crop_sides (T,), crop_found (T,), source_hw (2,)   only for --raw caches
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from finecliper.face.backend import FaceTrack
from finecliper.io import atomic_write, write_json

MANIFEST_NAME = "cache_manifest.json"
CACHE_FORMAT = "finecliper-face-cache"
CACHE_FORMAT_VERSION = 1
_FLOAT16_MAX_SIDE = 1024


class FaceCacheError(ValueError):
    """A face cache that is missing, unreadable, or was built by another extractor."""


def extractor_hash(info: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that changes the cache content."""
    return hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(cache_dir: str | Path, clip_id: str) -> Path:
    """``DIR/<clip_id>.npz``; refuses ids that would escape ``DIR``."""
    rel = PurePosixPath(str(clip_id).replace("\\", "/"))
    if rel.is_absolute() or not rel.parts or any(p in ("..", ".", "") for p in rel.parts):
        raise FaceCacheError(f"clip id {clip_id!r} cannot be used as a cache file name under {cache_dir}")
    return Path(cache_dir).joinpath(*rel.parts[:-1], rel.parts[-1] + ".npz")


def make_manifest(info: dict[str, Any]) -> dict[str, Any]:
    return {"format": CACHE_FORMAT, "format_version": CACHE_FORMAT_VERSION, "extractor": info,
            "extractor_hash": extractor_hash(info)}


def read_manifest(cache_dir: str | Path) -> dict[str, Any]:
    path = Path(cache_dir) / MANIFEST_NAME
    if not path.is_file():
        raise FaceCacheError(f"{path} not found: {cache_dir} is not a face cache. Build one with "
                             f"`finecliper extract --clips <clips dir> --out {cache_dir}`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FaceCacheError(f"{path}: unreadable ({e}); delete the cache folder and re-run `finecliper extract`") from e
    if manifest.get("format") != CACHE_FORMAT or manifest.get("format_version") != CACHE_FORMAT_VERSION:
        raise FaceCacheError(f"{path}: format {manifest.get('format')!r} v{manifest.get('format_version')} is not "
                             f"{CACHE_FORMAT!r} v{CACHE_FORMAT_VERSION}; rebuild it with `finecliper extract`")
    return manifest


def open_or_create(cache_dir: str | Path, info: dict[str, Any]) -> dict[str, Any]:
    """The manifest of ``cache_dir``; written if new, refused if it was built with another extractor."""
    cache_dir = Path(cache_dir)
    wanted = make_manifest(info)
    if not (cache_dir / MANIFEST_NAME).exists():
        write_json(cache_dir / MANIFEST_NAME, wanted)
        return wanted
    have = read_manifest(cache_dir)
    if have["extractor_hash"] != wanted["extractor_hash"]:
        diffs = _diff(have.get("extractor", {}), info)
        raise FaceCacheError(
            f"{cache_dir / MANIFEST_NAME}: this cache was built by another extractor "
            f"({'; '.join(diffs) or 'hash differs'}). Use a new --out folder, or delete {cache_dir} to rebuild.")
    return have


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix.rstrip('.')}: cache has {a!r}, now {b!r}"]


def save_face_cache(path: str | Path, track: FaceTrack, *, clip_id: str, extractor_hash: str,
                    extra: dict[str, np.ndarray] | None = None) -> None:
    """Write one clip atomically (temp file + rename): a crash never leaves a half-written .npz."""
    lm_dtype = np.float16 if max(track.frame_hw) <= _FLOAT16_MAX_SIDE else np.float32
    arrays = dict(
        landmarks=track.landmarks68.astype(lm_dtype), parsing=track.parsing.astype(np.uint8),
        boxes=track.boxes.astype(np.float32), valid=track.valid.astype(bool),
        confidence=track.confidence.astype(np.float32), n_faces=track.n_faces.astype(np.int16),
        reasons=track.reasons.astype(np.uint8), frame_hw=np.asarray(track.frame_hw, np.int32),
        extractor_hash=np.array(extractor_hash), clip_id=np.array(clip_id))
    for k, v in (extra or {}).items():
        if k in arrays:
            raise ValueError(f"extra array {k!r} clashes with a cache field")
        arrays[k] = np.asarray(v)
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def read_cache_hash(path: str | Path) -> str | None:
    """The extractor hash stored in a clip file, or None if the file is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["extractor_hash"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):  # a truncated file: redo it
        return None


def load_face_cache(path: str | Path) -> FaceTrack:
    """One clip's cache → FaceTrack (landmarks as float32). Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FaceCacheError(f"face cache file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile/numpy errors of a truncated or foreign file
        raise FaceCacheError(f"{path}: not a readable face cache ({type(e).__name__}: {e}); delete it and "
                             f"re-run `finecliper extract` (it resumes)") from e
    need = ("landmarks", "parsing", "boxes", "valid", "confidence", "n_faces", "reasons", "frame_hw")
    missing = [k for k in need if k not in data]
    if missing:
        raise FaceCacheError(f"{path}: missing arrays {missing}; delete it and re-run `finecliper extract`")
    t = data["valid"].shape[0]
    if data["landmarks"].shape != (t, 68, 2) or data["parsing"].shape[0] != t:
        raise FaceCacheError(f"{path}: inconsistent shapes (landmarks {data['landmarks'].shape}, "
                             f"parsing {data['parsing'].shape}, valid {data['valid'].shape})")
    meta = {k: data[k] for k in data if k not in need}
    meta = {k: (str(v) if v.dtype.kind == "U" else v) for k, v in meta.items()}
    return FaceTrack(landmarks68=data["landmarks"].astype(np.float32), parsing=data["parsing"],
                     boxes=data["boxes"], valid=data["valid"].astype(bool), confidence=data["confidence"],
                     n_faces=data["n_faces"], reasons=data["reasons"],
                     frame_hw=(int(data["frame_hw"][0]), int(data["frame_hw"][1])), meta=meta)
