"""Decoding any video (PyAV) or frame folder as a stream, and the face tracks of a video.

Pass 1 (``scan_video``) decodes every frame once and runs the face detector on it; only the boxes are
kept, so long videos fit in memory. Tracks come from the IoU tracker (``face.backend``), then
``link_tracks`` re-joins a face that was lost for a moment (the tracker alone gives it a new id after
``max_missed`` frames), so a person keeps one id through the whole video.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from finecliper.data.frames import FrameError, FolderFrames, decode_video, open_frames, upright_rgb
from finecliper.face.backend import FaceDetection, assign_track_ids


@dataclass
class VideoInfo:
    path: Path
    fps: float
    num_frames: int          # frames actually decoded (the container's count may be wrong)
    frame_hw: tuple[int, int]
    fps_from_file: bool = True  # False: a frame folder, or a file without a rate (``default_fps`` used)


def probe(path: str | Path, default_fps: float = 25.0) -> tuple[float, bool]:
    """(fps, known) of a video file or frame folder; raises ``FrameError`` naming the file when unreadable."""
    src = open_frames(path)  # opens the container: a corrupt file fails here, with its name
    if src.fps and src.fps > 0:
        return float(src.fps), True
    return float(default_fps), False


def iter_frames(path: str | Path, wanted: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
    """(H, W, 3) uint8 RGB frames in order, upright; videos are decoded once as a stream (threaded).

    ``wanted(i)`` False: frame i is decoded (inter-frame codecs need it) but not converted to RGB,
    and None is yielded in its place (the conversion is most of the cost at 720p).
    """
    path = Path(path)
    if path.is_dir():
        src = FolderFrames(path)
        for i in range(src.num_frames):
            yield src.read([i])[0] if wanted is None or wanted(i) else None
        return
    for i, frame in enumerate(decode_video(path)):
        yield upright_rgb(frame) if wanted is None or wanted(i) else None


def video_rate(path: str | Path, fps: float):
    """The stream's frame rate as a Fraction (for writing an overlay at exactly the input rate)."""
    from fractions import Fraction

    path = Path(path)
    if path.is_file():
        import av

        with av.open(str(path)) as c:
            rate = c.streams.video[0].average_rate
            if rate:
                return Fraction(rate)
    return Fraction(fps).limit_denominator(1001)


@dataclass
class Scan:
    info: VideoInfo
    detections: list[list[FaceDetection]]   # per frame, largest first
    seconds: dict[str, float] = field(default_factory=dict)  # decode, detect


def detect_resized(detector: Callable[[np.ndarray], list[FaceDetection]], frame: np.ndarray,
                   max_side: int) -> list[FaceDetection]:
    """Detect on the frame shrunk to ``max_side`` (0: as is); boxes in the original frame's pixels.

    BlazeFace sees a 192x192 letterboxed input, so shrinking a 720p frame to 640 px first loses
    nothing and halves the detector's own resize.
    """
    h, w = frame.shape[:2]
    s = max_side / max(h, w) if max_side else 1.0
    if s >= 1.0:
        return detector(frame)
    import cv2

    small = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    sx, sy = w / small.shape[1], h / small.shape[0]
    out = detector(small)
    for d in out:  # pixel-centre convention: x_big + 0.5 = (x_small + 0.5) * scale
        d.box = ((d.box.reshape(2, 2) + 0.5) * np.array([sx, sy], np.float32) - 0.5).reshape(4).astype(np.float32)
    return out


def scan_video(path: str | Path, detector: Callable[[np.ndarray], list[FaceDetection]],
               default_fps: float = 25.0, detect_size: int = 640) -> Scan:
    """Pass 1: decode every frame and detect every face (boxes in frame pixels)."""
    path = Path(path)
    fps, known = probe(path, default_fps)
    dets: list[list[FaceDetection]] = []
    hw: tuple[int, int] | None = None
    t_detect = 0.0
    t0 = time.perf_counter()
    for frame in iter_frames(path):
        if hw is None:
            hw = (int(frame.shape[0]), int(frame.shape[1]))
        elif frame.shape[:2] != hw:
            raise FrameError(f"{path}: frame {len(dets)} is {frame.shape[1]}x{frame.shape[0]} but the video started at "
                             f"{hw[1]}x{hw[0]}; re-encode it at one size")
        t1 = time.perf_counter()
        dets.append(detect_resized(detector, frame, detect_size))
        t_detect += time.perf_counter() - t1
    total = time.perf_counter() - t0
    if hw is None:
        raise FrameError(f"{path}: no frame could be decoded; the file is empty or corrupt")
    info = VideoInfo(path, fps, len(dets), hw, known)
    return Scan(info, dets, {"decode": total - t_detect, "detect": t_detect})


# ----------------------------------------------------------------------------- tracks

@dataclass
class TrackBoxes:
    """One face followed through the video."""
    track_id: int
    boxes: np.ndarray   # (N, 4) float32 x0 y0 x1 y1, zeros where not found
    found: np.ndarray   # (N,) bool, detected in this frame
    scores: np.ndarray  # (N,) float32 detection confidence, 0 where not found

    @property
    def first(self) -> int:
        return int(np.flatnonzero(self.found)[0])

    @property
    def last(self) -> int:
        return int(np.flatnonzero(self.found)[-1])

    @property
    def area(self) -> float:
        b = self.boxes[self.found]
        return float(((b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)).sum())


def _centre_side(box: np.ndarray) -> tuple[np.ndarray, float]:
    return (box[:2] + box[2:]) / 2, float(max(box[2] - box[0], box[3] - box[1]))


def link_tracks(tracks: dict[int, TrackBoxes], max_gap: int, max_shift: float = 0.75) -> dict[int, TrackBoxes]:
    """Merge a track that starts within ``max_gap`` frames after another one ended, close to where it ended.

    Close: centre distance <= ``max_shift`` x the mean box side. Tracks that overlap in time are never
    merged (two faces at once are two people). Greedy in order of start; each ended track is continued
    at most once, by the nearest candidate.
    """
    order = sorted(tracks, key=lambda t: tracks[t].first)
    merged: dict[int, TrackBoxes] = {}
    for tid in order:
        t = tracks[tid]
        c1, s1 = _centre_side(t.boxes[t.first])
        best, best_d = None, np.inf
        for mid, m in merged.items():
            gap = t.first - m.last
            if gap <= 0 or gap > max_gap + 1:
                continue
            c0, s0 = _centre_side(m.boxes[m.last])
            d = float(np.linalg.norm(c1 - c0))
            if d <= max_shift * (s0 + s1) / 2 and d < best_d:
                best, best_d = mid, d
        if best is None:
            merged[tid] = TrackBoxes(tid, t.boxes.copy(), t.found.copy(), t.scores.copy())
        else:
            m = merged[best]
            m.boxes[t.found], m.found[t.found], m.scores[t.found] = t.boxes[t.found], True, t.scores[t.found]
    return merged


def face_tracks(detections: list[list[FaceDetection]], fps: float, *, all_faces: bool = False,
                min_track_s: float = 0.5, link_gap_s: float = 1.0, iou_threshold: float = 0.3,
                max_missed: int = 5) -> list[TrackBoxes]:
    """The face tracks of a video, with ids 0, 1, ... in order of first appearance (then left to right).

    Default: only the largest face (largest summed box area over the video: large *and* persistent,
    as ``face.crop.pick_main_track``). ``all_faces``: every track seen for at least
    min(min_track_s seconds, half the video) frames; shorter ones are spurious detections.
    """
    n = len(detections)
    ids = assign_track_ids(detections, iou_threshold, max_missed)
    raw: dict[int, TrackBoxes] = {}
    for k, (dets, tid) in enumerate(zip(detections, ids)):
        for d, i in zip(dets, tid.tolist()):
            t = raw.get(i)
            if t is None:
                t = raw[i] = TrackBoxes(i, np.zeros((n, 4), np.float32), np.zeros(n, bool), np.zeros(n, np.float32))
            t.boxes[k], t.found[k], t.scores[k] = d.box, True, d.confidence
    if not raw:
        return []
    tracks = list(link_tracks(raw, max_gap=int(round(link_gap_s * fps))).values())
    if all_faces:
        min_frames = max(1, min(int(round(min_track_s * fps)), n // 2))
        tracks = [t for t in tracks if int(t.found.sum()) >= min_frames]
    else:
        tracks = [max(tracks, key=lambda t: t.area)]
    tracks.sort(key=lambda t: (t.first, float(t.boxes[t.first][0])))
    for k, t in enumerate(tracks):
        t.track_id = k
    return tracks
