"""Face crops from raw footage: detect every face, follow the largest one, smooth its box, crop squares.

1. ``detect_faces``: BlazeFace full-range detector on every frame (short range where it finds none), each
   detection confirmed by the face mesh (``facemesh.confirmed``) so that text and textures give none.
2. ``pick_main_track``: IoU tracker over the detections; the track with the largest summed area wins.
3. ``smooth_boxes``: missing frames interpolated, then Savitzky–Golay on centre x, centre y and side.
4. ``crop_frames``: square crop with a margin, resized to S×S by one affine warp per frame
   (outside the frame: black). ``crop_matrix`` is that warp, so points map exactly both ways.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from finecliper.face.backend import assign_track_ids, FaceDetection
from finecliper.face.blazeface import BlazeFace
from finecliper.face.facemesh import FaceMesh, FaceMeshConfig, confirmed, roi_from_box


@dataclass
class CropConfig:
    margin: float = 0.25             # added on each side, as a fraction of the face box side
    out_size: int = 224  # side of the square crop, px
    smooth_window: int = 9           # Savitzky–Golay window in frames (odd; shrunk for short clips)
    smooth_order: int = 2  # Savitzky–Golay polynomial order
    detector_model: int = 1          # BlazeFace 0 = short range (close faces), 1 = full range (small, distant faces)
    min_detection_confidence: float = 0.6  # the full-range model's own threshold in MediaPipe's graph


@dataclass
class CropTrack:
    centres: np.ndarray   # (T, 2) float32 crop centre, frame pixels (pixel-centre convention)
    sides: np.ndarray     # (T,) float32 crop side in frame pixels
    found: np.ndarray     # (T,) bool, the followed face was detected in this frame
    out_size: int
    source_hw: tuple[int, int]

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {"crop_centres": self.centres, "crop_sides": self.sides, "crop_found": self.found,
                "source_hw": np.asarray(self.source_hw, np.int32)}


class FaceDetector:
    """BlazeFace boxes in frame pixels (largest first), each confirmed by the face mesh.

    ``model`` 1 (full range, for small and distant faces) falls back to the short-range model on frames
    where it confirms no face: the full-range model misses faces that fill the frame (a face-crop
    video). A detection counts when the mesh confirms it (presence, size, geometry: ``FaceMeshConfig``'s
    defaults); the mesh runs once per detection, on the detection's own ROI.
    """

    def __init__(self, model: int = 1, min_confidence: float = 0.6):
        self.model, self.min_confidence = model, min_confidence
        self.verify = FaceMeshConfig()
        self.detectors = [BlazeFace(model, min_confidence)] + ([BlazeFace(0, min_confidence)] if model == 1 else [])
        self.mesh = FaceMesh()

    def describe(self) -> dict:
        return {"detectors": [d.describe() for d in self.detectors], "verified_by": "facemesh presence + geometry",
                "min_presence": self.verify.min_presence, "min_face_size": self.verify.min_face_size,
                "max_yaw": self.verify.max_yaw}

    def __call__(self, frame: np.ndarray) -> list[FaceDetection]:
        out: list[FaceDetection] = []
        for detector in self.detectors:
            det = detector.detect(frame)
            for box, kps, score in zip(det.boxes, det.keypoints, det.scores):
                if confirmed(self.mesh.run(frame, roi_from_box(box, kps[0], kps[1])), self.verify):
                    out.append(FaceDetection(np.zeros((68, 2), np.float32), (box - 0.5).astype(np.float32), float(score)))
            if out:
                break
        return sorted(out, key=lambda d: -d.area)

    def close(self) -> None:
        """Nothing to release (kept for callers that close their detector)."""


def detect_faces(frames, detector: FaceDetector) -> list[list[FaceDetection]]:
    """frames: iterable of (H, W, 3) uint8 RGB → all faces of each frame, largest first."""
    return [detector(f) for f in frames]


def pick_main_track(detections: list[list[FaceDetection]]) -> tuple[np.ndarray, np.ndarray]:
    """The face followed through the clip: boxes (T, 4) float32 and found (T,) bool.

    Tracks by IoU, then keeps the track with the largest summed box area (large *and* persistent).
    """
    t = len(detections)
    boxes, found = np.zeros((t, 4), np.float32), np.zeros(t, bool)
    ids = assign_track_ids(detections)
    area: dict[int, float] = {}
    for dets, tid in zip(detections, ids):
        for d, i in zip(dets, tid.tolist()):
            area[i] = area.get(i, 0.0) + d.area
    if not area:
        return boxes, found
    main = max(area, key=area.get)
    for k, (dets, tid) in enumerate(zip(detections, ids)):
        for d, i in zip(dets, tid.tolist()):
            if i == main:
                boxes[k], found[k] = d.box, True
    return boxes, found


def smooth_boxes(boxes: np.ndarray, found: np.ndarray, frame_hw: tuple[int, int], cfg: CropConfig) -> CropTrack:
    """Square crop centre and side per frame; gaps interpolated, then Savitzky–Golay smoothed.

    No face in any frame → the centred square of the whole frame (every frame marked not found).
    """
    from scipy.signal import savgol_filter

    h, w = frame_hw
    t = len(boxes)
    if not found.any():
        side = float(min(h, w))
        return CropTrack(np.tile(np.array([(w - 1) / 2, (h - 1) / 2], np.float32), (t, 1)),
                         np.full(t, side, np.float32), found.copy(), cfg.out_size, (h, w))
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * (1 + 2 * cfg.margin)
    k = np.flatnonzero(found)
    series = np.stack([np.interp(np.arange(t), k, v[k]) for v in (cx, cy, side)])  # (3, T), edges held
    win = min(cfg.smooth_window, t if t % 2 else t - 1)
    if win > cfg.smooth_order and win >= 3:
        series = savgol_filter(series, win, cfg.smooth_order, axis=1, mode="interp")
    series[2] = np.maximum(series[2], 4.0)
    return CropTrack(series[:2].T.astype(np.float32), series[2].astype(np.float32), found.copy(), cfg.out_size, (h, w))


def crop_matrix(centre: np.ndarray, side: float, out_size: int) -> np.ndarray:
    """(2, 3) affine: frame pixel coords → crop pixel coords (pixel centres; square of ``side`` at ``centre``)."""
    s = out_size / float(side)
    c = (out_size - 1) / 2.0
    return np.array([[s, 0.0, c - s * centre[0]], [0.0, s, c - s * centre[1]]])


def crop_frames(frames: np.ndarray, crop: CropTrack, offset: int = 0) -> np.ndarray:
    """frames (T, H, W, 3) → (T, S, S, 3); ``offset`` = index of frames[0] in the clip (chunked reads)."""
    s = crop.out_size
    out = np.empty((len(frames), s, s, 3), np.uint8)
    for i, f in enumerate(frames):
        m = crop_matrix(crop.centres[offset + i], float(crop.sides[offset + i]), s)
        out[i] = cv2.warpAffine(f, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


def crop_to_frame(points: np.ndarray, crop: CropTrack, frame_index: int) -> np.ndarray:
    """Points (..., 2) in the crop of ``frame_index`` → frame pixels."""
    m = crop_matrix(crop.centres[frame_index], float(crop.sides[frame_index]), crop.out_size)
    return (np.asarray(points, np.float64) - m[:, 2]) / m[0, 0]
