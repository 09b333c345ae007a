"""Offline default face backend: MediaPipe 0.10.14's bundled face detector + 478-point face mesh.

Static mode (single images) runs the detector on every frame; video mode tracks the mesh from frame to
frame and re-runs the detector only when fewer than ``max_faces`` faces are tracked. Landmarks: the mesh
mapped to iBUG-68 (``layout.MESH_TO_68``); parsing: LaPa ids painted from mesh polygons.

Confidence: the detection score of the detection that matches the face; when the video graph tracked
the face without re-detecting, the score of the same face in the previous frame is carried over (the
graph drops faces whose landmark presence falls below ``min_tracking_confidence``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from finecliper.face import layout
from finecliper.face.backend import FaceDetection, FaceTrack, box_iou, build_track

_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point: 1/16 px


@dataclass
class MediapipeConfig:
    max_faces: int = 1                  # >1 finds other faces (n_faces, --all-faces) at ~4 ms/frame extra
    refine_landmarks: bool = True       # attention mesh: better eyes and lips (478 points)
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    min_confidence: float = 0.5         # below: frame invalid, reason "low confidence"
    multiple_faces: str = "largest"     # or "invalid": frames with several faces are flagged
    parsing_size: int = 224             # longer side of the stored label map (0 = frame size)


def layout_digest() -> str:
    """Short hash of the index tables, so that a change of the mapping invalidates caches."""
    tables = {"mesh_to_68": layout.MESH_TO_68.tolist(),
              "polygons": [[lab, list(poly)] for lab, poly in layout.PARSING_POLYGONS]}
    return hashlib.sha256(json.dumps(tables).encode()).hexdigest()[:16]


def rasterise_mesh(points: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """LaPa label map from mesh points (>=468, 2) given in the map's own pixels → (h, w) uint8."""
    labels = np.zeros(hw, np.uint8)
    fixed = np.round(np.asarray(points, np.float64) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    for label, poly in layout.PARSING_POLYGONS:
        cv2.fillPoly(labels, [fixed[list(poly)]], int(label), lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return labels


def frame_to_map(points: np.ndarray, frame_hw: tuple[int, int], map_hw: tuple[int, int]) -> np.ndarray:
    """Pixel-centre coordinates of a frame → those of a map covering the same frame at another size."""
    sy, sx = map_hw[0] / frame_hw[0], map_hw[1] / frame_hw[1]
    return (np.asarray(points, np.float64) + 0.5) * np.array([sx, sy]) - 0.5


def check_frames(frames: np.ndarray, what: str = "frames") -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{what}: expected (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


class MediapipeFaceAnalyser:
    name = "mediapipe"

    def __init__(self, cfg: MediapipeConfig | None = None):
        self.cfg = cfg or MediapipeConfig()
        if self.cfg.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {self.cfg.max_faces}")
        self._graphs: dict[bool, Any] = {}
        self._prev: list[FaceDetection] = []  # last frame's faces, for confidence carry-over in video mode

    def describe(self) -> dict[str, Any]:
        import mediapipe as mp

        return {"backend": self.name, "version": mp.__version__, "layout": layout_digest(),
                "params": dataclasses.asdict(self.cfg)}

    def _graph(self, static: bool):
        if static not in self._graphs:
            from mediapipe.python.solution_base import SolutionBase
            from mediapipe.python.solutions import face_mesh

            c = self.cfg
            # FaceMesh's own graph, also asking for the detections (for their scores).
            self._graphs[static] = SolutionBase(
                binary_graph_path=face_mesh._BINARYPB_FILE_PATH,
                side_inputs={"num_faces": c.max_faces, "with_attention": c.refine_landmarks,
                             "use_prev_landmarks": not static},
                calculator_params={
                    "facedetectionshortrangecpu__facedetectionshortrange__facedetection__"
                    "TensorsToDetectionsCalculator.min_score_thresh": c.min_detection_confidence,
                    "facelandmarkcpu__ThresholdingCalculator.threshold": c.min_tracking_confidence},
                outputs=["multi_face_landmarks", "face_detections"])
        return self._graphs[static]

    def close(self) -> None:
        for g in self._graphs.values():
            g.close()
        self._graphs.clear()

    def detect(self, frames: np.ndarray, video: bool, *, reset: bool = True) -> list[list[FaceDetection]]:
        """``reset=False`` continues the previous call's video tracking (the next chunk of one clip)."""
        frames = check_frames(frames)
        graph = self._graph(static=not video)
        if video and reset:
            graph.reset()  # a new clip: forget the previous clip's tracked faces
            self._prev = []
        h, w = frames.shape[1:3]
        scale = np.array([w, h], np.float32)
        out: list[list[FaceDetection]] = []
        prev: list[FaceDetection] = self._prev if video else []
        for frame in frames:
            res = graph.process({"image": np.ascontiguousarray(frame)})
            det_boxes, det_scores = _detections(res.face_detections, w, h)
            faces = []
            for lms in res.multi_face_landmarks or ():
                pts = np.array([(p.x, p.y) for p in lms.landmark], np.float32) * scale - 0.5  # (478, 2)
                box = np.array([*pts[:468].min(0), *pts[:468].max(0)], np.float32)
                conf = _match_score(box, det_boxes, det_scores, prev, self.cfg.min_tracking_confidence)
                faces.append(FaceDetection(pts[layout.MESH_TO_68].copy(), box, conf, pts))
            faces.sort(key=lambda d: -d.area)
            out.append(faces)
            prev = faces if video else []
        self._prev = prev
        return out

    def rasterise(self, det: FaceDetection, hw: tuple[int, int], frame_hw: tuple[int, int]) -> np.ndarray:
        return rasterise_mesh(frame_to_map(det.points, frame_hw, hw), hw)

    def analyse(self, frames: np.ndarray, video: bool, *, reset: bool = True) -> FaceTrack:
        frames = check_frames(frames)
        frame_hw = frames.shape[1:3]
        dets = self.detect(frames, video, reset=reset)
        c = self.cfg
        return build_track(dets, frame_hw, c.parsing_size, lambda d, hw: self.rasterise(d, hw, frame_hw),
                           min_confidence=c.min_confidence, multiple_faces=c.multiple_faces,
                           meta={"backend": self.name})


def _detections(dets, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    if not dets:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes, scores = [], []
    for d in dets:
        bb = d.location_data.relative_bounding_box
        boxes.append([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h])
        scores.append(d.score[0] if d.score else 0.0)
    return np.array(boxes, np.float32), np.array(scores, np.float32)


def _match_score(box: np.ndarray, det_boxes: np.ndarray, det_scores: np.ndarray,
                 prev: list[FaceDetection], fallback: float) -> float:
    """Score of the detection whose centre lies in the face box (nearest centre), else the previous frame's."""
    if len(det_boxes):
        centres = (det_boxes[:, :2] + det_boxes[:, 2:]) / 2
        inside = ((centres >= box[:2]) & (centres <= box[2:])).all(1)
        if inside.any():
            d = np.linalg.norm(centres - (box[:2] + box[2:]) / 2, axis=1)
            d[~inside] = np.inf
            return float(det_scores[int(np.argmin(d))])
    if prev:
        iou = box_iou(box[None], np.stack([p.box for p in prev]))[0]
        j = int(np.argmax(iou))
        if iou[j] > 0.3:
            return prev[j].confidence
    return float(fallback)
