"""Run a face backend on every frame of every clip and write the face cache (see ``face.cache``).

Face-crop datasets (DFEW/FERV39k/MAFW frames): the backend (default ``facemesh``: MediaPipe's face
models on our own LiteRT graph) runs on the frames as they are, in video mode (mesh tracking).
``raw=True`` (own footage): faces are first detected and followed, the box is smoothed, and the
backend runs on S×S crops; the cache then refers to the crops and stores the crop
parameters (``crop_centres``, ``crop_sides``) to map back to the frame.

Frames are read in chunks of ``chunk`` frames (videos are decoded as one stream), so long videos fit in
memory; tracking continues across chunks.
"""
from __future__ import annotations

import dataclasses
import multiprocessing as mp_ctx
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import finecliper
from finecliper.data.frames import IMAGE_EXTS, VIDEO_EXTS, VideoFrames, decode_video, natural_key, open_frames, upright_rgb
from finecliper.face.backend import FaceTrack, concat_tracks
from finecliper.face.cache import (FaceCacheError, cache_path, open_or_create, read_cache_hash,
                                   save_face_cache)
from finecliper.face.crop import CropConfig, FaceDetector, crop_frames, detect_faces, pick_main_track, smooth_boxes
from finecliper.face.facexformer import FaceXFormerAnalyser, FaceXFormerAnalyserConfig
from finecliper.face.facemesh import FaceMeshAnalyser, FaceMeshConfig

BACKENDS = ("facemesh", "facexformer")
EXTRACTOR_VERSION = 2  # bump when extraction logic changes the cache content (2: facemesh on LiteRT, depth)


@dataclass
class FaceXFormerExtractConfig:
    checkpoint: str = ""                      # ckpts/model.pt of kartiknarayan/facexformer
    device: str = "cpu"  # cpu | cuda | auto
    batch_size: int = 16  # face crops per FaceXFormer call
    allow_pickle: bool = False  # let a pickled checkpoint execute code when loaded
    analyser: FaceXFormerAnalyserConfig = field(default_factory=FaceXFormerAnalyserConfig)  # detection, crop and validity rules


@dataclass
class ExtractConfig:
    backend: str = "facemesh"                 # facemesh (offline default) | facexformer (the paper's)
    facemesh: FaceMeshConfig = field(default_factory=FaceMeshConfig)  # the LiteRT face-mesh backend (backend=facemesh)
    facexformer: FaceXFormerExtractConfig = field(default_factory=FaceXFormerExtractConfig)  # the FaceXFormer backend (backend=facexformer)
    raw: bool = False                         # own footage: detect, follow and crop the largest face first
    crop: CropConfig = field(default_factory=CropConfig)  # raw footage: how the followed face is cropped
    chunk: int = 128                          # frames held in memory at once


def make_analyser(cfg: ExtractConfig):
    if cfg.backend == "facemesh":
        return FaceMeshAnalyser(cfg.facemesh)
    if cfg.backend == "facexformer":
        c = cfg.facexformer
        if not c.checkpoint:
            raise ValueError("backend facexformer needs facexformer.checkpoint=PATH (ckpts/model.pt from kartiknarayan/facexformer)")
        return FaceXFormerAnalyser(c.checkpoint, c.device, c.batch_size, c.analyser, allow_pickle=c.allow_pickle)
    raise ValueError(f"unknown face backend {cfg.backend!r}; choose one of {BACKENDS}")


def parsing_size(cfg: ExtractConfig) -> int:
    return cfg.facexformer.analyser.parsing_size if cfg.backend == "facexformer" else cfg.facemesh.parsing_size


def make_detector(cfg: ExtractConfig) -> FaceDetector:
    """The raw-footage face detector (``raw=True``)."""
    return FaceDetector(cfg.crop.detector_model, cfg.crop.min_detection_confidence)


def extractor_info(cfg: ExtractConfig, analyser, detector: FaceDetector | None = None) -> dict[str, Any]:
    """Everything that determines the cache content; its hash identifies the cache (``detector``: with ``raw``)."""
    info = {"extractor_version": EXTRACTOR_VERSION, "finecliper": finecliper.__version__, **analyser.describe(),
            "raw": cfg.raw, "landmarks": "iBUG-68, frame pixels, pixel-centre convention",
            "depth": "mesh z per landmark, pixels (x scale), smaller = nearer; NaN = none",
            "parsing": f"LaPa ids, whole frame, longer side {parsing_size(cfg)}"}
    if cfg.raw:
        info["crop"] = {**dataclasses.asdict(cfg.crop), "detector": detector.describe()}
    return info


# ----------------------------------------------------------------------------- clips

def discover_clips(root: str | Path) -> list[tuple[str, Path]]:
    """A folder of clips: every video file, and every folder holding jpg/png frames, below ``root``.

    Clip id = path relative to ``root`` without the video extension ('00001', 'Scene/Happy/0001').
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"clips folder not found: {root}")
    clips = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if any(f.lower().endswith(IMAGE_EXTS) for f in filenames) and d != root:
            clips.append((d.relative_to(root).as_posix(), d))
        for f in filenames:
            if f.lower().endswith(VIDEO_EXTS):
                p = d / f
                clips.append((p.relative_to(root).with_suffix("").as_posix(), p))
    if not clips:
        raise FileNotFoundError(f"{root}: no clips found (video files or folders of jpg/png frames)")
    ids = [c[0] for c in clips]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ValueError(f"{root}: several clips share the id(s) {sorted(dup)[:5]} (e.g. a video and a frame "
                         f"folder of the same name); keep one")
    return sorted(clips, key=lambda c: natural_key(c[0]))


def clips_from_manifest(path: str | Path, data_root: str | Path | None = None) -> list[tuple[str, Path]]:
    """The clips found on disk by ``finecliper prepare`` (clips with problems that have no path are skipped)."""
    from finecliper.data.prepare import load_manifest

    m = load_manifest(path)
    root = Path(data_root) if data_root is not None else Path(m.data["data_root"])
    clips_dir = root / m.data.get("clips_root", "")
    if not clips_dir.is_dir():
        raise FileNotFoundError(f"{path}: clips folder {clips_dir} not found; pass --data-root (the folder given "
                                f"to `finecliper prepare`)")
    return [(cid, clips_dir / rel) for cid, rel in sorted(m.clip_paths().items())]


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return i, n


def shard(clips: list, i: int, n: int) -> list:
    """Every n-th clip starting at i (clips sorted by id first, so shards never overlap)."""
    return clips[i::n]


def iter_chunks(path: str | Path, chunk: int) -> Iterator[np.ndarray]:
    """(t, H, W, 3) uint8 RGB chunks of a clip, in order, upright; videos decoded once as a stream."""
    src = open_frames(path)
    if isinstance(src, VideoFrames):
        buf = []
        for frame in decode_video(src.path):
            buf.append(upright_rgb(frame))
            if len(buf) == chunk:
                yield np.stack(buf)
                buf = []
        if buf:
            yield np.stack(buf)
    else:
        for start in range(0, src.num_frames, chunk):
            yield src.read(range(start, min(start + chunk, src.num_frames)))


def extract_clip(path: str | Path, analyser, cfg: ExtractConfig,
                 detector: FaceDetector | None = None) -> tuple[FaceTrack, dict[str, np.ndarray]]:
    """The face track of every frame of one clip (+ crop arrays for raw footage)."""
    if not cfg.raw:
        parts = [analyser.analyse(c, video=True, reset=(k == 0)) for k, c in enumerate(iter_chunks(path, cfg.chunk))]
        return concat_tracks(parts), {}
    detector = detector or make_detector(cfg)
    dets, hw = [], None
    for c in iter_chunks(path, cfg.chunk):  # pass 1: detections (the box smoother needs the whole clip)
        hw = c.shape[1:3]
        dets += detect_faces(c, detector)
    boxes, found = pick_main_track(dets)
    crop = smooth_boxes(boxes, found, hw, cfg.crop)
    parts, offset = [], 0
    for k, c in enumerate(iter_chunks(path, cfg.chunk)):  # pass 2: crop, then the backend on the crops
        parts.append(analyser.analyse(crop_frames(c, crop, offset), video=True, reset=(k == 0)))
        offset += len(c)
    return concat_tracks(parts), crop.as_arrays()


# ----------------------------------------------------------------------------- the run

@dataclass
class ExtractSummary:
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (clip_id, message)
    frames: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


_WORKER: dict[str, Any] = {}


def _init_worker(cfg: ExtractConfig, out_dir: str, ext_hash: str, analyser=None,
                 detector: FaceDetector | None = None) -> None:
    import cv2

    cv2.setNumThreads(1)  # one core per worker
    _WORKER.update(cfg=cfg, out_dir=out_dir, hash=ext_hash, analyser=analyser or make_analyser(cfg),
                   detector=(detector or make_detector(cfg)) if cfg.raw else None)


def _work(item: tuple[str, str]) -> tuple[str, int, str | None]:
    clip_id, path = item
    w = _WORKER
    try:
        track, extra = extract_clip(path, w["analyser"], w["cfg"], w["detector"])
        save_face_cache(cache_path(w["out_dir"], clip_id), track, clip_id=clip_id, extractor_hash=w["hash"], extra=extra)
        return clip_id, len(track), None
    except Exception as e:  # one bad clip must not stop the run; it is reported at the end
        return clip_id, 0, f"{path}: {type(e).__name__}: {e}"


def run_extraction(clips: list[tuple[str, Path]], out_dir: str | Path, cfg: ExtractConfig, *, workers: int = 1,
                   on_progress: Callable[[int, int, ExtractSummary], None] | None = None) -> ExtractSummary:
    """Extract every clip not already in ``out_dir`` with the same extractor hash.

    ``workers`` processes, one backend each (``workers <= 1``: in this process). ``on_progress(done,
    total, summary)`` is called after each clip.
    """
    out_dir = Path(out_dir)
    analyser = make_analyser(cfg)
    detector = make_detector(cfg) if cfg.raw else None
    manifest = open_or_create(out_dir, extractor_info(cfg, analyser, detector))  # refuses a foreign cache
    h = manifest["extractor_hash"]
    summary = ExtractSummary()
    todo = []
    for cid, path in clips:
        if read_cache_hash(cache_path(out_dir, cid)) == h:
            summary.skipped += 1
        else:
            todo.append((cid, str(path)))
    total = len(clips)
    t0 = time.perf_counter()

    def record(res: tuple[str, int, str | None]) -> None:
        cid, n, err = res
        if err:
            summary.failed.append((cid, err))
        else:
            summary.written += 1
            summary.frames += n
        summary.seconds = time.perf_counter() - t0
        if on_progress:
            on_progress(summary.written + summary.skipped + len(summary.failed), total, summary)

    if on_progress:
        on_progress(summary.skipped, total, summary)
    if workers <= 1 or len(todo) <= 1:
        _init_worker(cfg, str(out_dir), h, analyser, detector)
        try:
            for item in todo:
                record(_work(item))
        finally:
            _WORKER.clear()
    else:
        # spawn: LiteRT interpreters and torch threads must not be forked
        ctx = mp_ctx.get_context("spawn")
        with ctx.Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(cfg, str(out_dir), h)) as pool:
            for res in pool.imap_unordered(_work, todo):
                record(res)
    summary.seconds = time.perf_counter() - t0
    return summary


__all__ = ["ExtractConfig", "ExtractSummary", "FaceCacheError", "clips_from_manifest", "discover_clips",
           "extract_clip", "extractor_info", "iter_chunks", "make_analyser", "parse_shard", "run_extraction", "shard"]
