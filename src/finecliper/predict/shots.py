"""Shot cuts: where a video jumps to another camera or scene, so that no face track crosses it.

Each frame is reduced to a colour histogram (HSV, 8 x 4 x 4 bins, on a 64 x 64 thumbnail); a cut is
a pair of consecutive frames whose histograms differ by a Bhattacharyya distance above ``threshold``
(0 = same distribution, 1 = disjoint). Within a shot, camera and face motion move pixels around but keep
their colours (distances ~0.02-0.2); a cut to another scene replaces them (distances ~0.5-0.9).
"""
from __future__ import annotations

import cv2
import numpy as np

THUMB = 64
BINS = (8, 4, 4)


def signature(frame: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (128,) float32 normalised HSV histogram."""
    small = cv2.resize(frame, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), [0, 180, 0, 256, 0, 256]).reshape(-1)
    return (hist / max(float(hist.sum()), 1.0)).astype(np.float32)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two signatures, in [0, 1]."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def find_cuts(distances: np.ndarray, threshold: float) -> list[int]:
    """distances (N,) with distances[i] = distance(frame i-1, frame i) (distances[0] ignored) ->
    the frames that start a new shot (never 0). ``threshold`` <= 0 or >= 1 finds none."""
    if not 0 < threshold < 1:
        return []
    d = np.asarray(distances, np.float64)
    return [int(i) for i in np.flatnonzero(d > threshold) if i > 0]


def shot_ranges(num_frames: int, cuts: list[int]) -> list[tuple[int, int]]:
    """[start, end) frame ranges of the shots (end exclusive)."""
    edges = [0] + sorted(c for c in set(cuts) if 0 < c < num_frames) + [num_frames]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
