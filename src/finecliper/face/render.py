"""3-channel "pure" maps for the middle-level encoder (reference §7.2): no frame overlay, black background.

- parsing map: each LaPa id painted with a fixed, well-separated colour;
- landmark map: 1-px polylines per iBUG region (eyes, lips closed) under filled discs (r=2), one
  colour per region so that the channels carry part identity.
Both are deterministic and cheap (~0.1 ms at 224²), so they are rendered in the Dataset worker.
"""
from __future__ import annotations

import cv2
import numpy as np

from finecliper.face.layout import IBUG_REGIONS, NUM_PARSING_CLASSES

# RGB per LaPa id: background black; left/right parts differ so a flip without the id swap is visible.
PARSING_PALETTE = np.zeros((256, 3), np.uint8)
PARSING_PALETTE[:NUM_PARSING_CLASSES] = [
    (0, 0, 0),        # 0 background
    (204, 153, 102),  # 1 skin
    (255, 0, 0),      # 2 left brow (image-left)
    (255, 128, 0),    # 3 right brow
    (0, 255, 0),      # 4 left eye
    (0, 255, 255),    # 5 right eye
    (255, 255, 0),    # 6 nose
    (255, 0, 255),    # 7 upper lip
    (255, 255, 255),  # 8 inner mouth
    (128, 0, 255),    # 9 lower lip
    (0, 0, 255),      # 10 hair
]

# RGB per iBUG region, in IBUG_REGIONS order.
LANDMARK_COLOURS: dict[str, tuple[int, int, int]] = {
    "jaw": (255, 255, 255),
    "right_brow": (255, 0, 0),
    "left_brow": (255, 128, 0),
    "nose_bridge": (255, 255, 0),
    "lower_nose": (0, 255, 255),
    "right_eye": (0, 255, 0),
    "left_eye": (0, 128, 255),
    "outer_lip": (255, 0, 255),
    "inner_lip": (128, 0, 255),
}
DISC_RADIUS = 2
_SHIFT = 4  # cv2 fixed-point bits: sub-pixel accurate drawing


def render_parsing_map(labels: np.ndarray) -> np.ndarray:
    """labels (H, W) uint8 LaPa ids → (H, W, 3) uint8 RGB."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise ValueError(f"parsing labels must be (H, W) uint8, got {labels.shape} {labels.dtype}")
    return PARSING_PALETTE[labels]


def render_landmark_map(points: np.ndarray, size: int | tuple[int, int], valid: bool = True) -> np.ndarray:
    """points (68, 2) in map pixels (pixel-centre convention) → (S, S, 3) uint8; black when not valid.

    ``size`` is S or (H, W). Points outside the map are clipped by drawing, never an error.
    """
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    canvas = np.zeros((h, w, 3), np.uint8)
    if not valid:
        return canvas
    points = np.asarray(points, np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"landmarks must be (68, 2), got {points.shape}")
    if not np.isfinite(points).all():
        return canvas
    fixed = np.round(points * (1 << _SHIFT)).astype(np.int32)
    for name, idx, closed in IBUG_REGIONS:
        cv2.polylines(canvas, [fixed[idx.start:idx.stop]], closed, LANDMARK_COLOURS[name], 1, cv2.LINE_8, _SHIFT)
    for name, idx, _ in IBUG_REGIONS:
        for p in fixed[idx.start:idx.stop]:
            cv2.circle(canvas, (int(p[0]), int(p[1])), DISC_RADIUS << _SHIFT, LANDMARK_COLOURS[name], -1, cv2.LINE_8, _SHIFT)
    return canvas
