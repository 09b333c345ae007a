"""``FaceMapsExtra``: the dataset plug-in that adds parsing and landmark maps to each clip item.

For the sampled ``indices`` it loads the clip's face cache, applies the clip's geometry (the one the
frames got) to the label maps (nearest) and to the landmarks (``apply_points``), swaps left/right ids
and landmark indices when the geometry flips (so colours keep their anatomical side), renders both
maps and normalises them with CLIP mean/std like the frames.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from finecliper.data.augment import apply_image, apply_points, eval_geom, normalize_clip
from finecliper.face.backend import FaceTrack
from finecliper.face.cache import FaceCacheError, cache_path, load_face_cache, read_cache_hash, read_manifest
from finecliper.face.layout import FLIP_68, PARSING_FLIP_LUT
from finecliper.face.render import render_landmark_map, render_parsing_map


def render_clip_maps(track: FaceTrack, geom, src_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (selected) track + the frames' geometry → parsing (T, S, S, 3), landmarks (T, S, S, 3) uint8, valid (T,).

    ``src_hw`` is the size of the frames the geometry was sampled for; it must be the size the
    cache refers to.
    """
    if tuple(track.frame_hw) != tuple(src_hw):
        raise FaceCacheError(f"face cache refers to {track.frame_hw[0]}x{track.frame_hw[1]} frames but the clip's "
                             f"frames are {src_hw[0]}x{src_hw[1]}; rebuild the cache from the same frames "
                             f"(a --raw cache refers to face crops)")
    h, w = src_hw
    s = geom.out_size
    t = len(track)
    parsing = np.zeros((t, s, s, 3), np.uint8)
    marks = np.zeros((t, s, s, 3), np.uint8)
    for i in range(t):
        if not track.valid[i]:
            continue  # no face: empty (black) maps
        labels = track.parsing[i]
        if labels.shape != (h, w):  # stored at parsing_size: back to frame pixels first
            labels = cv2.resize(labels, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
        labels = apply_image(labels, geom, "nearest")
        pts = apply_points(track.landmarks68[i], geom)   # (68, 2) output pixels
        if geom.flip:
            labels = PARSING_FLIP_LUT[labels]
            pts = pts[FLIP_68]
        parsing[i] = render_parsing_map(labels)
        marks[i] = render_landmark_map(pts, s, True)
    return parsing, marks, track.valid.copy()


class FaceMapsExtra:
    """``ClipExtra`` for ``ClipDataset``: adds ``parsing_maps``, ``landmark_maps`` (T, 3, S, S) and ``face_valid`` (T,)."""

    def __init__(self, cache_dir: str | Path, image_size: int = 224):
        self.cache_dir = Path(cache_dir)
        self.image_size = int(image_size)
        self.manifest = read_manifest(self.cache_dir)  # fails early on a folder that is not a face cache

    def track(self, clip_id: str) -> FaceTrack:
        path = cache_path(self.cache_dir, clip_id)
        if not path.is_file():
            raise FaceCacheError(f"no face cache for clip {clip_id!r} in {self.cache_dir} (expected {path}); "
                                 f"run `finecliper extract` on this dataset with --out {self.cache_dir}")
        return load_face_cache(path)

    remedy = "run `finecliper extract` over these clips with the same --out (it redoes missing and unreadable files)"

    def check(self, records) -> list[str]:
        """Clips whose cache file is missing, unreadable or from another extractor (a cheap read of each file)."""
        expected = self.manifest.get("extractor_hash")
        problems = []
        for rec in records:
            path = cache_path(self.cache_dir, rec.clip_id)
            if not path.is_file():
                problems.append(f"{rec.clip_id}: no face cache file {path}")
            elif read_cache_hash(path) != expected:
                problems.append(f"{rec.clip_id}: {path} is unreadable or from another extractor")
        return problems

    def load(self, record, indices: np.ndarray, geom, src_hw: tuple[int, int]) -> dict:
        if geom is None:
            geom = eval_geom(src_hw[0], src_hw[1], self.image_size)
        if geom.out_size != self.image_size:
            raise ValueError(f"geometry outputs {geom.out_size}px maps but FaceMapsExtra was built for "
                             f"{self.image_size}px; use the dataset's image_size")
        clip_id = getattr(record, "clip_id", record)
        track = self.track(clip_id)
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(track)):
            raise FaceCacheError(f"{cache_path(self.cache_dir, clip_id)}: the cache has {len(track)} frames but frame "
                                 f"{int(idx.max())} was asked for; the clip changed since extraction, re-run "
                                 f"`finecliper extract` after deleting this file")
        parsing, marks, valid = render_clip_maps(track.select(idx), geom, src_hw)
        return {"parsing_maps": normalize_clip(parsing),       # (T, 3, S, S)
                "landmark_maps": normalize_clip(marks),        # (T, 3, S, S)
                "face_valid": torch.from_numpy(valid)}         # (T,) bool
