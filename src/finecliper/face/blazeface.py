"""BlazeFace face detection: MediaPipe's short- and full-range models with our own pre- and post-processing.

Written from the behaviour MediaPipe 0.10.14 documents in its graph configs (``face_detection.pbtxt`` and
``face_detection_{short,full}_range.pbtxt``) and calculators (ImageToTensor, SsdAnchors,
TensorsToDetections, NonMaxSuppression, DetectionProjection):

1. input: the whole frame letterboxed to a square of side max(H, W) (zero border), bilinearly warped to
   the model's S x S where tensor pixel u samples frame coordinate ``x0 + u * side / S`` (MediaPipe's
   corner-to-corner mapping), values mapped to [-1, 1];
2. SSD anchors with a fixed size of 1: centres ``((x + 0.5) / F, (y + 0.5) / F)`` on the feature grid of
   each stride (F = S / stride), anchors of layers that share a stride interleaved per cell, two per
   layer when ``interpolated_scale_aspect_ratio`` > 0;
3. decoding of the 16 regressor values per anchor (x, y, w, h, then 6 keypoints x, y; all divided by S,
   centres offset by the anchor); score = sigmoid(clip(logit, -100, 100)); boxes below ``min_score`` or
   with a negative size are dropped;
4. weighted non-maximum suppression: take the best remaining box, average it with every remaining box
   whose IoU with it exceeds 0.3 (box corners and keypoints weighted by score; the best box's score is
   kept), repeat with the rest;
5. projection out of the letterbox into the frame.

Coordinates. Internally, "frame coordinates" are MediaPipe's: a normalised value times the frame size,
in which the warp samples pixel index ``x`` at coordinate ``x``. Boxes handed to the rest of finecliper
are shifted by -0.5 into the pixel-centre convention of ``face.backend`` (the same shift the mesh uses).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from finecliper.face.backend import box_iou
from finecliper.face.models import SHA256, model_path
from finecliper.litert import load_interpreter

NUM_KEYPOINTS = 6        # subject's right eye, left eye, nose tip, mouth, right ear tragion, left ear tragion
SCORE_CLIP = 100.0
NMS_IOU = 0.3            # min_suppression_threshold of MediaPipe's face detection graph


@dataclass(frozen=True)
class DetectorModel:
    file: str
    size: int                      # square input side S
    strides: tuple[int, ...]
    two_anchors_per_layer: bool    # interpolated_scale_aspect_ratio > 0
    num_anchors: int


SHORT_RANGE = DetectorModel("face_detection_short_range.tflite", 128, (8, 16, 16, 16), True, 896)
FULL_RANGE = DetectorModel("face_detection_full_range_sparse.tflite", 192, (4,), False, 2304)
MODELS = {0: SHORT_RANGE, 1: FULL_RANGE}   # MediaPipe's model_selection numbering


def ssd_anchor_centres(model: DetectorModel) -> np.ndarray:
    """(N, 2) anchor centres (x, y) in [0, 1] of the model input, in the model's output order."""
    out = []
    i = 0
    while i < len(model.strides):
        j = i
        while j < len(model.strides) and model.strides[j] == model.strides[i]:
            j += 1
        per_cell = (j - i) * (2 if model.two_anchors_per_layer else 1)
        f = int(np.ceil(model.size / model.strides[i]))
        ys, xs = np.meshgrid((np.arange(f) + 0.5) / f, (np.arange(f) + 0.5) / f, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    anchors = np.concatenate(out).astype(np.float32)
    if len(anchors) != model.num_anchors:
        raise AssertionError(f"{model.file}: {len(anchors)} anchors, the model has {model.num_anchors}")
    return anchors


@dataclass
class Detections:
    """Faces of one frame in frame coordinates (see module doc), best score first."""
    boxes: np.ndarray       # (N, 4) float32 x0 y0 x1 y1
    keypoints: np.ndarray   # (N, 6, 2) float32
    scores: np.ndarray      # (N,) float32

    def __len__(self) -> int:
        return len(self.scores)

    def take(self, n: int) -> "Detections":
        return Detections(self.boxes[:n], self.keypoints[:n], self.scores[:n])


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 threshold: float = NMS_IOU) -> Detections:
    """Weighted non-maximum suppression (see module doc, step 4)."""
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    out_b, out_k, out_s = [], [], []
    rest = np.arange(len(scores))
    while len(rest):
        near = box_iou(boxes[rest[:1]], boxes[rest])[0] > threshold
        near[0] = True                       # the best box (a zero-area one overlaps nothing, itself included)
        group = rest[near]
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((keypoints[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[rest[0]])
        rest = rest[~near]
    if not out_s:
        return Detections(np.zeros((0, 4), np.float32), np.zeros((0, NUM_KEYPOINTS, 2), np.float32),
                          np.zeros(0, np.float32))
    return Detections(np.array(out_b, np.float32), np.array(out_k, np.float32), np.array(out_s, np.float32))


class BlazeFace:
    """One BlazeFace interpreter (one thread). ``detect`` → :class:`Detections` in frame coordinates."""

    def __init__(self, model: int = 0, min_score: float = 0.5):
        if model not in MODELS:
            raise ValueError(f"detector model must be 0 (short range) or 1 (full range), got {model!r}")
        self.model = MODELS[model]
        self.min_score = float(min_score)
        self._interp = load_interpreter(model_path(self.model.file), sha256=SHA256[self.model.file])
        inp = self._interp.get_input_details()[0]
        outs = self._interp.get_output_details()
        if tuple(inp["shape"]) != (1, self.model.size, self.model.size, 3) or len(outs) != 2:
            raise ValueError(f"{self.model.file}: unexpected tensors {inp['shape']} / {len(outs)} outputs")
        by_width = sorted(outs, key=lambda d: -int(d["shape"][-1]))   # regressors (16) first, scores (1)
        self._in, self._reg, self._cls = inp["index"], by_width[0]["index"], by_width[1]["index"]
        self._anchors = ssd_anchor_centres(self.model)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model.file, "sha256": SHA256[self.model.file], "min_score": self.min_score}

    def letterbox(self, frame: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """The model input (1, S, S, 3) float32 in [-1, 1], and (x0, y0, side) of the square it shows."""
        h, w = frame.shape[:2]
        s = self.model.size
        side = float(max(h, w))
        x0, y0 = (w - side) / 2, (h - side) / 2
        k = side / s
        m = np.array([[k, 0.0, x0], [0.0, k, y0]])
        img = cv2.warpAffine(frame, m, (s, s), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        x = img.astype(np.float32)
        x *= 2.0 / 255.0
        x -= 1.0
        return x[None], x0, y0, side

    def detect(self, frame: np.ndarray) -> Detections:
        """All faces of one (H, W, 3) uint8 RGB frame, best score first."""
        x, x0, y0, side = self.letterbox(frame)
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._reg)[0]                  # (N, 16)
        logits = self._interp.get_tensor(self._cls)[0, :, 0]         # (N,)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
        keep = np.flatnonzero(scores >= self.min_score)
        raw, scores, anchors = raw[keep] / self.model.size, scores[keep], self._anchors[keep]
        centre = raw[:, :2] + anchors
        half = raw[:, 2:4] / 2
        ok = (raw[:, 2] >= 0) & (raw[:, 3] >= 0)
        boxes = np.concatenate([centre - half, centre + half], 1)[ok]
        kps = (raw[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + anchors[:, None, :])[ok]
        det = weighted_nms(boxes, kps, scores[ok].astype(np.float32))
        offset = np.array([x0, y0], np.float32)
        det.boxes = det.boxes * side + np.tile(offset, 2)
        det.keypoints = det.keypoints * side + offset
        return det
