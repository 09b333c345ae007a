"""Describe clips with one backend, refine the text and append it to the description cache.

Backends (``BACKENDS``):
- ``landmarks``: the label-free landmark describer over a face cache (``finecliper extract``);
- ``video-llava``: Video-LLaVA on 8 uniformly sampled face frames (``text.video_llava``);
- ``captions``: MAFW's own English captions, stored in the same cache format.

A backend turns one :class:`ClipItem` into an input with ``load`` (a missing or unreadable input
skips that clip, with its reason, and the run goes on) and a batch of inputs into raw texts with
``generate``. ``run_describe`` skips clips already in the cache, so an interrupted run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from finecliper.data.frames import VIDEO_EXTS, open_frames
from finecliper.face.cache import cache_path, load_face_cache, read_manifest
from finecliper.text import landmark_describer as LD
from finecliper.text.desc_cache import DescriptionCache
from finecliper.text.refine import refine_description, refine_fingerprint

BACKENDS = ("landmarks", "video-llava", "captions")
DESCRIBER_VERSION = 2  # bump when the landmark describer's output changes (2: 3-D pose, events, closures, seconds)


@dataclass
class ClipItem:
    clip_id: str
    frames: Path | None = None  # clip folder or video of face crops
    label: str | None = None  # class name (label-conditioned prompts, audits); never used label-free
    caption: str | None = None


@dataclass
class DescribeSummary:
    described: int = 0
    already: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clip_id, reason)
    token_lengths: list[int] = field(default_factory=list)  # of the refined texts described now


class Backend(Protocol):
    name: str
    model_hash: str
    prompt_hash: str | None
    leaks_label: bool

    def load(self, item: ClipItem) -> Any: ...

    def generate(self, inputs: Sequence[Any], items: Sequence[ClipItem]) -> list[tuple[str, dict[str, Any]]]: ...


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class LandmarkInput:
    """What the landmark describer needs of one clip (read from its face cache)."""

    landmarks: np.ndarray  # (T, 68, 2) px
    valid: np.ndarray  # (T,) bool
    depth: np.ndarray | None  # (T, 68) mesh z in the pixel scale of x and y; None without depth
    fps: float | None


def clip_fps(item: ClipItem, default: float | None) -> float | None:
    """The frame rate of a video clip (from its stream), else ``default``: frame folders carry none, and the
    landmarks backend needs no video (it reads the face cache), so a video that is not there is no error."""
    if item.frames is not None and Path(item.frames).suffix.lower() in VIDEO_EXTS and Path(item.frames).is_file():
        return open_frames(item.frames).fps or default
    return default


def track_depth(track) -> np.ndarray | None:
    """The track's ``depth68`` (T, 68), or None where the backend measured no depth (all NaN: FaceXFormer)."""
    depth = np.asarray(track.depth68, np.float32)
    return None if np.isnan(depth).all() else depth


class LandmarksBackend:
    """Reads ``<face cache>/<clip_id>.npz`` and describes its 68-point landmark track (with depth when the
    cache has ``depth68``). fps: the clip video's own, else the one given."""

    name = "landmarks"
    prompt_hash = None
    leaks_label = False

    def __init__(self, face_cache: str | Path, fps: float | None = None, baseline: str = "first",
                 params: LD.DescriberParams = LD.DEFAULT_PARAMS):
        self.face_cache = Path(face_cache)
        manifest = read_manifest(self.face_cache)
        self.fps, self.baseline, self.params = fps, baseline, params
        self.model_hash = _sha({
            "describer_version": DESCRIBER_VERSION, "params": dataclasses.asdict(params),
            "motions": [dataclasses.asdict(m) for m in LD.MOTION_BY_NAME.values()], "levels": LD.LEVELS,
            "rigid_points": LD.RIGID_POINTS, "fps": fps, "baseline": baseline,
            "face_extractor_hash": manifest["extractor_hash"]})

    def missing(self, items: Iterable[ClipItem]) -> list[str]:
        """Ids of the clips that have no file in the face cache."""
        return [it.clip_id for it in items if not cache_path(self.face_cache, it.clip_id).is_file()]

    def load(self, item: ClipItem) -> LandmarkInput:
        track = load_face_cache(cache_path(self.face_cache, item.clip_id))
        return LandmarkInput(track.landmarks68, track.valid, track_depth(track), clip_fps(item, self.fps))

    def generate(self, inputs, items):
        out = []
        for x in inputs:
            d = LD.describe_landmarks(x.landmarks, x.valid, depth=x.depth, fps=x.fps, baseline=self.baseline,
                                      params=self.params)
            out.append((d.text, {"motions": [dataclasses.asdict(m) for m in d.motions], "n_valid": d.n_valid,
                                 "n_frames": d.n_frames, "alignment": d.alignment, "fps": x.fps,
                                 "head_text": d.head_text,
                                 "head_motions": [dataclasses.asdict(m) for m in d.head_motions],
                                 "blinks": d.blinks}))
        return out


class VideoLlavaBackend:
    """Reads every frame of the clip, then ``VideoLlavaDescriber`` samples 8 and generates in batches."""

    name = "video-llava"

    def __init__(self, describer):
        self.describer = describer
        self.model_hash = describer.model_hash
        self.prompt_hash = describer.prompt_hash
        self.leaks_label = describer.label_conditioned

    def load(self, item: ClipItem) -> np.ndarray:
        from finecliper.text.video_llava import uniform_indices

        if item.frames is None:
            raise FileNotFoundError(f"clip {item.clip_id}: no frame path (give --manifest or --data-root)")
        src = open_frames(item.frames)
        idx = uniform_indices(src.num_frames, self.describer.num_frames)
        return src.read(idx)  # (8, H, W, 3) uint8; the describer's own sampling keeps all 8

    def generate(self, inputs, items):
        labels = [it.label for it in items] if self.leaks_label else None
        if labels is not None and any(lb is None for lb in labels):
            missing = next(it.clip_id for it in items if it.label is None)
            raise ValueError(f"--label-conditioned needs labels; clip {missing} has none")
        texts = self.describer.describe(list(inputs), labels)
        return [(t, {"label": it.label} if self.leaks_label else {}) for t, it in zip(texts, items)]


class CaptionsBackend:
    """MAFW's own English captions (read by ``finecliper.data.splits`` with ``captions=True``)."""

    name = "captions"
    prompt_hash = None
    leaks_label = False
    model_hash = _sha({"source": "MAFW with_caption English captions (column 4)", "version": 1})

    def load(self, item: ClipItem) -> str:
        if not item.caption:
            raise ValueError(f"clip {item.clip_id}: no caption (MAFW with_caption files only)")
        return item.caption

    def generate(self, inputs, items):
        return [(c, {}) for c in inputs]


def cache_identity(backend: Backend, dataset: str, refine: bool) -> dict[str, Any]:
    return {"dataset": dataset, "backend": backend.name, "model_hash": backend.model_hash,
            "prompt_hash": backend.prompt_hash, "refine_hash": refine_fingerprint() if refine else None,
            "leaks_label": bool(backend.leaks_label)}


def run_describe(items: Iterable[ClipItem], backend: Backend, cache: DescriptionCache, *, batch_size: int = 8,
                 refine: bool = True, token_length: Callable[[str], int] | None = None,
                 progress: Callable[[int], None] | None = None) -> DescribeSummary:
    """Describe every item not yet in ``cache``; ``progress(n)`` is called as n more clips are handled."""
    summary = DescribeSummary()
    todo: list[ClipItem] = []
    for it in items:
        if it.clip_id in cache:
            summary.already += 1
            if progress:
                progress(1)
        else:
            todo.append(it)
    for start in range(0, len(todo), max(1, batch_size)):
        batch, inputs = [], []
        for it in todo[start:start + batch_size]:
            try:
                inputs.append(backend.load(it))
                batch.append(it)
            except (OSError, ValueError) as e:  # missing/unreadable input: skip this clip only
                summary.skipped.append((it.clip_id, str(e)))
        for (raw, extra), it in zip(backend.generate(inputs, batch) if batch else [], batch):
            if refine:
                r = refine_description(raw)
                text, removed = r.text, r.removed_dicts()
            else:
                text, removed = raw, []
            cache.append(it.clip_id, text, raw, removed, **extra)
            summary.described += 1
            if token_length is not None:
                summary.token_lengths.append(token_length(text))
        if progress:
            progress(len(todo[start:start + batch_size]))
    return summary
