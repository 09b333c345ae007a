"""What every face backend returns: per-frame faces, the primary-face track, and an IoU tracker.

Coordinates: frame pixels with the pixel-centre convention, (0, 0) is the centre of the top-left pixel
(the same as FaceXFormer's align_corners=False decoding and as ``cv2`` drawing). Boxes are
``(x0, y0, x1, y1)`` in the same frame pixels.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

# Why a frame is not valid (stored as uint8 in caches).
REASON_OK, REASON_NO_FACE, REASON_SEVERAL_FACES, REASON_LOW_CONFIDENCE = 0, 1, 2, 3
REASON_NAMES = {REASON_OK: "ok", REASON_NO_FACE: "no face", REASON_SEVERAL_FACES: "several faces",
                REASON_LOW_CONFIDENCE: "low confidence"}


@dataclass
class FaceDetection:
    """One face in one frame."""
    landmarks68: np.ndarray          # (68, 2) float32, frame pixels
    box: np.ndarray                  # (4,) float32 x0 y0 x1 y1
    confidence: float
    points: np.ndarray | None = None  # backend's own dense points (facemesh: (468, 2)) for parsing
    depth68: np.ndarray | None = None  # (68,) float32 mesh z of the 68 points: pixels (x scale), smaller = nearer

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


@dataclass
class FaceTrack:
    """The primary face of each of T frames.

    Invalid frames have ``valid=False``, a reason code and an all-background label map; their landmarks
    and box are zeros when no face was seen, else those of the rejected face. ``depth68`` is the mesh z
    of each landmark (pixels, the x scale; MediaPipe's sign: smaller = nearer the camera), NaN where the
    backend has no depth (FaceXFormer) or no face was seen; left out, it is all NaN.
    """
    landmarks68: np.ndarray   # (T, 68, 2) float32, frame pixels
    parsing: np.ndarray       # (T, H', W') uint8 LaPa ids; covers the whole frame, H'/H == W'/W (±rounding)
    boxes: np.ndarray         # (T, 4) float32
    valid: np.ndarray         # (T,) bool
    confidence: np.ndarray    # (T,) float32
    n_faces: np.ndarray       # (T,) int16, faces seen in the frame
    reasons: np.ndarray       # (T,) uint8, REASON_* codes (0 where valid)
    frame_hw: tuple[int, int]
    meta: dict[str, Any] = field(default_factory=dict)
    depth68: np.ndarray | None = None  # (T, 68) float32

    def __post_init__(self) -> None:
        t = int(self.valid.shape[0])
        if self.depth68 is None:
            self.depth68 = np.full((t, 68), np.nan, np.float32)
        elif self.depth68.shape != (t, 68):
            raise ValueError(f"depth68 must be ({t}, 68), got {self.depth68.shape}")

    def __len__(self) -> int:
        return int(self.valid.shape[0])

    def reason_names(self) -> list[str]:
        return [REASON_NAMES[int(r)] for r in self.reasons]

    def select(self, indices) -> "FaceTrack":
        """The track restricted to frame ``indices`` (any int array)."""
        idx = np.asarray(indices, dtype=np.int64)
        arrays = {f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)
                  if isinstance(getattr(self, f.name), np.ndarray)}
        return FaceTrack(**arrays, frame_hw=self.frame_hw, meta=dict(self.meta))


@runtime_checkable
class FaceAnalyser(Protocol):
    """A face backend. ``video=True`` lets it track across consecutive frames of one clip."""
    name: str

    def detect(self, frames: np.ndarray, video: bool, *, reset: bool = True) -> list[list[FaceDetection]]:
        """All faces of each frame: frames (T, H, W, 3) uint8 RGB → T lists, largest face first.

        ``reset=False`` continues tracking from the previous call (the next chunk of the same clip).
        """
        ...

    def analyse(self, frames: np.ndarray, video: bool, *, reset: bool = True) -> FaceTrack:
        """The primary face of each frame, with its LaPa label map."""
        ...

    def describe(self) -> dict[str, Any]:
        """Backend name, library version and every parameter that changes the output (for caches)."""
        ...


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N, 4) and b (M, 4) in x0 y0 x1 y1 → (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


class IoUTracker:
    """Persistent track ids by greedy IoU matching with the previous boxes of each live track.

    A track survives ``max_missed`` frames without a match, so a face lost for a frame or two keeps its id.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5):
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._boxes: dict[int, np.ndarray] = {}
        self._missed: dict[int, int] = {}
        self._next = 0

    def update(self, boxes: np.ndarray) -> np.ndarray:
        """boxes (N, 4) of one frame → track ids (N,) int64."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        ids = np.full(len(boxes), -1, np.int64)
        live = list(self._boxes)
        if live and len(boxes):
            iou = box_iou(boxes, np.stack([self._boxes[t] for t in live]))
            # greedy: best pair first
            for flat in np.argsort(-iou, axis=None):
                i, j = divmod(int(flat), len(live))
                if iou[i, j] < self.iou_threshold:
                    break
                if ids[i] < 0 and live[j] not in ids:
                    ids[i] = live[j]
        for i in np.flatnonzero(ids < 0):
            ids[i] = self._next
            self._next += 1
        matched = set(ids.tolist())
        for t in live:
            if t not in matched:
                self._missed[t] += 1
                if self._missed[t] > self.max_missed:
                    del self._boxes[t], self._missed[t]
        for i, t in enumerate(ids.tolist()):
            self._boxes[t] = boxes[i]
            self._missed[t] = 0
        return ids


def assign_track_ids(detections: list[list[FaceDetection]], iou_threshold: float = 0.3,
                     max_missed: int = 5) -> list[np.ndarray]:
    """Track ids for every face of every frame (one (N_t,) array per frame)."""
    tracker = IoUTracker(iou_threshold, max_missed)
    return [tracker.update(np.stack([d.box for d in dets]) if dets else np.zeros((0, 4))) for dets in detections]


def parsing_shape(frame_hw: tuple[int, int], parsing_size: int) -> tuple[int, int]:
    """Label-map size: the longer frame side becomes ``parsing_size``, aspect kept (0 = frame size)."""
    h, w = frame_hw
    if parsing_size <= 0:
        return h, w
    s = parsing_size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def build_track(detections: list[list[FaceDetection]], frame_hw: tuple[int, int], parsing_size: int,
                rasterise: Callable[[FaceDetection, tuple[int, int]], np.ndarray], *,
                min_confidence: float = 0.5, multiple_faces: str = "largest",
                meta: dict[str, Any] | None = None) -> FaceTrack:
    """Pick the primary (largest) face of each frame and rasterise its label map.

    ``multiple_faces``: "largest" keeps the largest face when several are seen; "invalid" marks such
    frames invalid with reason "several faces".
    """
    if multiple_faces not in ("largest", "invalid"):
        raise ValueError(f"multiple_faces must be 'largest' or 'invalid', got {multiple_faces!r}")
    t = len(detections)
    ph, pw = parsing_shape(frame_hw, parsing_size)
    track = FaceTrack(
        landmarks68=np.zeros((t, 68, 2), np.float32), parsing=np.zeros((t, ph, pw), np.uint8),
        boxes=np.zeros((t, 4), np.float32), valid=np.zeros(t, bool), confidence=np.zeros(t, np.float32),
        n_faces=np.zeros(t, np.int16), reasons=np.zeros(t, np.uint8), frame_hw=tuple(frame_hw), meta=dict(meta or {}))
    for i, dets in enumerate(detections):
        track.n_faces[i] = len(dets)
        if not dets:
            track.reasons[i] = REASON_NO_FACE
            continue
        best = max(dets, key=lambda d: d.area)
        track.landmarks68[i], track.boxes[i], track.confidence[i] = best.landmarks68, best.box, best.confidence
        if best.depth68 is not None:
            track.depth68[i] = best.depth68
        if len(dets) > 1 and multiple_faces == "invalid":
            track.reasons[i] = REASON_SEVERAL_FACES
        elif best.confidence < min_confidence:
            track.reasons[i] = REASON_LOW_CONFIDENCE
        else:
            track.valid[i] = True
            track.parsing[i] = rasterise(best, (ph, pw))
    return track


def concat_tracks(tracks: list[FaceTrack]) -> FaceTrack:
    """Chunks of one clip (same frame size) → one track."""
    if not tracks:
        raise ValueError("no tracks to concatenate")
    hw = tracks[0].frame_hw
    if any(t.frame_hw != hw for t in tracks):
        raise ValueError(f"frame sizes differ between chunks: {[t.frame_hw for t in tracks]}")
    arrays = {f.name: np.concatenate([getattr(t, f.name) for t in tracks])
              for f in dataclasses.fields(FaceTrack) if isinstance(getattr(tracks[0], f.name), np.ndarray)}
    return FaceTrack(**arrays, frame_hw=hw, meta=dict(tracks[0].meta))


def check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    """The frames every analyser takes: (T, H, W, 3) uint8 RGB, else a ValueError naming ``what``."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{what}: expected (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames
