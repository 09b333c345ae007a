"""The default face backend: MediaPipe's 468-point face-mesh network run by LiteRT in our own graph.

Written from the behaviour MediaPipe 0.10.14 documents in ``face_landmark_front_cpu.pbtxt``,
``face_detection_front_detection_to_roi.pbtxt``, ``face_landmark_landmarks_to_roi.pbtxt``,
``face_landmark_cpu.pbtxt`` and their calculators (DetectionsToRects, RectTransformation,
ImageToTensor, TensorsToLandmarks, LandmarkProjection, AssociationNormRect):

- **ROI from a detection**: the detection box's centre; rotation that brings the line from keypoint 0
  to keypoint 1 (the eyes) to horizontal; side = 1.5 x the box's longer side (a square).
- **ROI from landmarks** (video mode, the next frame's ROI): the same rule on the bounding box of the
  468 points, rotation from point 33 to point 263 (the outer eye corners).
- **Crop**: the rotated square warped bilinearly to 192 x 192 (edge pixels replicated), tensor pixel u
  sampling the ROI's corner-to-corner coordinate ``u / 192`` (MediaPipe's convention), values in [0, 1].
- **Landmarks**: the network's 468 (x, y, z) in crop pixels, divided by 192, rotated and scaled back by
  the ROI; z uses the x scale (pixels), MediaPipe's sign (smaller = nearer the camera).
- **Presence**: sigmoid of the network's face-flag output; a face below ``min_presence`` is dropped.
- **Video mode**: the ROIs of the previous frame's faces are tracked without detection; the detector
  runs only while fewer than ``max_faces`` faces are tracked (a face lost or never seen), as MediaPipe
  does. New detections that overlap a tracked ROI (IoU > 0.5, rotation ignored) give way to it.

On top of MediaPipe's graph, a face must look like one (``plausible``): presence, a minimum size, the
mesh inside its ROI at the expected scale, eyes level and in left/right order above nose, mouth and
chin, and a yaw below ``max_yaw`` (a face turned further hides its far eye behind the nose: the mesh
then invents half of it). This rejects the text and texture "faces" the detector accepts on its own.

Output per face: 468 points (x, y) in the pixel-centre convention of ``face.backend`` (MediaPipe's
value - 0.5), the 68 iBUG points (``layout.MESH_TO_68``), their depth (z, same pixel scale), the
468-point box, confidence = presence score.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

import finecliper
from finecliper.face import layout
from finecliper.face.backend import FaceDetection, FaceTrack, box_iou, build_track, check_frames
from finecliper.face.blazeface import BlazeFace, Detections
from finecliper.face.models import SHA256, model_path
from finecliper.litert import load_interpreter

MESH_FILE = "face_landmark.tflite"
MESH_SIZE = 192
NUM_POINTS = 468
ROI_SCALE = 1.5
ROI_IOU = 0.5                      # min_similarity_threshold of MediaPipe's AssociationNormRect
EYE_LINE = (33, 263)               # outer eye corners, subject's right then left: the ROI rotation
_SUBPIXEL_BITS = 4                 # cv2.fillPoly fixed point: 1/16 px


@dataclass
class FaceMeshConfig:
    max_faces: int = 1                      # faces looked for per frame (>1: other faces counted in n_faces)
    min_detection_confidence: float = 0.5   # BlazeFace short-range score threshold
    min_presence: float = 0.5               # mesh face-presence score below this: no face (MediaPipe's
                                            # min_tracking_confidence)
    min_face_size: float = 24.0             # px, longer side of the 468-point box; smaller faces are dropped
    max_yaw: float = 40.0                   # degrees (mesh estimate); past it the far eye hides behind the nose
    min_confidence: float = 0.5             # presence below this: frame invalid, reason "low confidence"
    multiple_faces: str = "largest"         # or "invalid": frames with several faces are flagged
    parsing_size: int = 224                 # longer side of the stored label map (0 = frame size)


@dataclass(frozen=True)
class Roi:
    """A rotated square in frame coordinates (MediaPipe's: normalised value x frame size)."""
    cx: float
    cy: float
    side: float
    angle: float   # radians; the crop is the frame rotated by -angle around the centre

    def box(self) -> np.ndarray:
        h = self.side / 2
        return np.array([self.cx - h, self.cy - h, self.cx + h, self.cy + h], np.float64)


def normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def roi_from_box(box: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> Roi:
    """Square ROI around ``box`` (x0 y0 x1 y1), rotated so that p0 -> p1 is horizontal, 1.5 x its long side."""
    angle = normalize_radians(-math.atan2(-(float(p1[1]) - float(p0[1])), float(p1[0]) - float(p0[0])))
    side = ROI_SCALE * max(float(box[2] - box[0]), float(box[3] - box[1]))
    return Roi(float(box[0] + box[2]) / 2, float(box[1] + box[3]) / 2, side, angle)


def points_box(points: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) of points (N, >=2)."""
    x, y = points[:, 0], points[:, 1]     # 1-D reductions: numpy's axis-0 ones cost 20x more on (N, 2)
    return np.array([x.min(), y.min(), x.max(), y.max()], np.float64)


def roi_from_landmarks(points: np.ndarray, box: np.ndarray | None = None) -> Roi:
    """The next frame's ROI from this frame's mesh points (468, >=2) in frame coordinates (``box``: theirs)."""
    return roi_from_box(points_box(points) if box is None else box, points[EYE_LINE[0]], points[EYE_LINE[1]])


def roi_matrix(roi: Roi, size: int = MESH_SIZE) -> np.ndarray:
    """(2, 3) affine: crop pixel (u, v) -> frame coordinates (MediaPipe's corner-to-corner mapping)."""
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    k = roi.side / size
    half = roi.side / 2
    return np.array([[k * c, -k * s, roi.cx - half * c + half * s],
                     [k * s, k * c, roi.cy - half * s - half * c]])


def associate(detected: list[Roi], tracked: list[Roi], threshold: float = ROI_IOU) -> list[Roi]:
    """ROIs to run the mesh on: detections, then tracked ROIs; a later ROI replaces earlier ones it overlaps."""
    out: list[Roi] = []
    for roi in detected + tracked:
        box = roi.box()
        out = [r for r in out if box_iou(r.box(), box)[0, 0] <= threshold]
        out.append(roi)
    return out


@dataclass
class MeshFace:
    """One mesh result. ``points`` in frame coordinates (MediaPipe's), ``local`` in crop units [0, 1]."""
    points: np.ndarray    # (468, 3) float32 x, y, z
    local: np.ndarray     # (468, 2) float32
    presence: float
    roi: Roi
    box: np.ndarray       # (4,) x0 y0 x1 y1 of the points


def warp_replicate(frame: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """``cv2.warpAffine`` (bilinear, inverse map ``m``, edge pixels replicated) to size x size, fast.

    cv2's replicate border is a slow path (2x) for every output pixel near or past the frame edge, which
    a face ROI (1.5 x the face) in a tight face crop mostly is: the frame is padded by replication just
    enough, once, and warped with a constant border that is then never sampled. Same pixels.
    """
    h, w = frame.shape[:2]
    (a, b, c), (d, e, f) = m.tolist()
    xs = (c, a * size + c, b * size + c, (a + b) * size + c)      # the crop's corners in the frame
    ys = (f, d * size + f, e * size + f, (d + e) * size + f)
    left, top = max(0, 2 - math.floor(min(xs))), max(0, 2 - math.floor(min(ys)))
    right, bottom = max(0, math.ceil(max(xs)) + 2 - w), max(0, math.ceil(max(ys)) + 2 - h)
    if left or top or right or bottom:
        frame = cv2.copyMakeBorder(frame, top, bottom, left, right, cv2.BORDER_REPLICATE)
        m = m.copy()
        m[:, 2] += (left, top)
    return cv2.warpAffine(frame, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class FaceMesh:
    """The face-landmark network on one LiteRT interpreter (one thread)."""

    def __init__(self):
        self._interp = load_interpreter(model_path(MESH_FILE), sha256=SHA256[MESH_FILE])
        inp = self._interp.get_input_details()[0]
        outs = self._interp.get_output_details()
        if tuple(inp["shape"]) != (1, MESH_SIZE, MESH_SIZE, 3) or len(outs) != 2:
            raise ValueError(f"{MESH_FILE}: unexpected tensors {inp['shape']} / {len(outs)} outputs")
        by_size = sorted(outs, key=lambda d: -int(np.prod(d["shape"])))   # 1404 landmark values, then the flag
        self._in, self._pts, self._flag = inp["index"], by_size[0]["index"], by_size[1]["index"]
        self._buf = np.empty((1, MESH_SIZE, MESH_SIZE, 3), np.float32)

    def run(self, frame: np.ndarray, roi: Roi) -> MeshFace:
        m = roi_matrix(roi)
        np.multiply(warp_replicate(frame, m, MESH_SIZE), np.float32(1 / 255), out=self._buf[0])
        self._interp.set_tensor(self._in, self._buf)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._pts).reshape(NUM_POINTS, 3)
        flag = float(self._interp.get_tensor(self._flag).reshape(-1)[0])
        presence = 1.0 / (1.0 + math.exp(-min(max(flag, -80.0), 80.0)))
        pts = np.empty((NUM_POINTS, 3), np.float32)
        pts[:, :2] = raw[:, :2] @ m[:, :2].T + m[:, 2]     # the crop matrix maps crop pixels to the frame
        pts[:, 2] = raw[:, 2] * np.float32(roi.side / MESH_SIZE)
        return MeshFace(pts, raw[:, :2] * np.float32(1 / MESH_SIZE), presence, roi, points_box(pts))


YAW_PAIRS = ((33, 263), (133, 362), (234, 454), (61, 291))   # eye corners, inner corners, face edges, mouth corners


def mesh_yaw(points: np.ndarray) -> float:
    """Head yaw in degrees (0 = frontal): mean tilt out of the image plane of four left/right point pairs."""
    v = points[[b for _, b in YAW_PAIRS]] - points[[a for a, _ in YAW_PAIRS]]
    return float(np.degrees(np.arctan2(np.abs(v[:, 2]), np.hypot(v[:, 0], v[:, 1]))).mean())


def plausible(face: MeshFace, min_size: float, max_yaw: float = 90.0) -> bool:
    """A mesh that looks like a face (see module doc); the ROI makes it upright in ``local`` units."""
    q = face.local
    size = float(max(face.box[2] - face.box[0], face.box[3] - face.box[1]))
    if size < min_size or mesh_yaw(face.points) > max_yaw:
        return False
    outside = np.count_nonzero((q < -0.02) | (q > 1.02)) / 2
    lo_hi = points_box(q)
    extent = float(max(lo_hi[2] - lo_hi[0], lo_hi[3] - lo_hi[1]))
    if outside > 0.02 * len(q) or not 0.45 < extent < 0.95:   # ROI = 1.5 x the face: ~0.67 of the crop
        return False
    r_eye, l_eye = q[EYE_LINE[0]], q[EYE_LINE[1]]
    iod = l_eye[0] - r_eye[0]                             # subject's right eye is image-left
    if not 0.25 * extent < iod < 0.75 * extent or abs(l_eye[1] - r_eye[1]) > 0.25 * iod:
        return False
    eyes_y, nose_y, mouth_y, chin_y = (r_eye[1] + l_eye[1]) / 2, q[4, 1], q[13, 1], q[152, 1]
    return bool(eyes_y < nose_y < mouth_y < chin_y)


def confirmed(face: MeshFace, cfg: FaceMeshConfig) -> bool:
    """The one rule for "this is a face": presence above ``min_presence`` and ``plausible`` geometry."""
    return face.presence >= cfg.min_presence and plausible(face, cfg.min_face_size, cfg.max_yaw)


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


def to_detection(face: MeshFace) -> FaceDetection:
    """A mesh face as the backend interface's ``FaceDetection`` (pixel-centre coordinates)."""
    xy = face.points[:, :2] - 0.5
    return FaceDetection(xy[layout.MESH_TO_68], (face.box - 0.5).astype(np.float32), face.presence, xy,
                         depth68=face.points[layout.MESH_TO_68, 2].copy())


class FaceMeshAnalyser:
    """``FaceAnalyser`` over BlazeFace (short range) + the face mesh; one instance per worker."""
    name = "facemesh"

    def __init__(self, cfg: FaceMeshConfig | None = None):
        self.cfg = cfg or FaceMeshConfig()
        if self.cfg.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {self.cfg.max_faces}")
        self.detector = BlazeFace(0, self.cfg.min_detection_confidence)
        self.mesh = FaceMesh()
        self._tracked: list[Roi] = []   # video mode: the ROIs from the previous frame's faces

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "version": finecliper.__version__, "layout": layout_digest(),
                "models": {f: SHA256[f] for f in (self.detector.model.file, MESH_FILE)},
                "params": dataclasses.asdict(self.cfg)}

    def close(self) -> None:
        self._tracked = []

    def frame_faces(self, frame: np.ndarray, tracked: list[Roi]) -> list[MeshFace]:
        """The faces of one frame, given the ROIs tracked from the previous one (empty in static mode)."""
        c = self.cfg
        detected: list[Roi] = []
        if len(tracked) < c.max_faces:
            det: Detections = self.detector.detect(frame).take(c.max_faces)
            detected = [roi_from_box(b, k[0], k[1]) for b, k in zip(det.boxes, det.keypoints)]
        rois = associate(detected, tracked)   # also merges tracked ROIs that converged on one face
        faces = []
        for roi in rois:
            face = self.mesh.run(frame, roi)
            if confirmed(face, c):
                faces.append(face)
        return faces

    def detect(self, frames: np.ndarray, video: bool, *, reset: bool = True) -> list[list[FaceDetection]]:
        """All faces of each frame, largest first; ``reset=False`` continues the previous call's tracking."""
        frames = check_frames(frames)
        if reset or not video:
            self._tracked = []
        out = []
        for frame in frames:
            faces = self.frame_faces(frame, self._tracked if video else [])
            if video:
                self._tracked = [roi_from_landmarks(f.points, f.box) for f in faces]
            out.append(sorted((to_detection(f) for f in faces), key=lambda d: -d.area))
        return out

    def analyse(self, frames: np.ndarray, video: bool, *, reset: bool = True) -> FaceTrack:
        frames = check_frames(frames)
        frame_hw = frames.shape[1:3]
        dets = self.detect(frames, video, reset=reset)
        c = self.cfg
        return build_track(dets, frame_hw, c.parsing_size,
                           lambda d, hw: rasterise_mesh(frame_to_map(d.points, frame_hw, hw), hw),
                           min_confidence=c.min_confidence, multiple_faces=c.multiple_faces,
                           meta={"backend": self.name})
