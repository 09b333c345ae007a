"""Decoding any video (PyAV) or frame folder as a stream, its frame times, shot cuts and face tracks.

Pass 1 (``scan_video``) decodes every frame once, runs the face detector on it and measures the colour
change from the previous frame (``shots``); only boxes and one number per frame are kept, so long videos
fit in memory. Frame times come from the stream's presentation timestamps (pts), so variable-frame-rate
videos (phones, screen recordings) get true times. Tracks (``face_tracks``) come from the IoU tracker
(``face.backend``) run shot by shot, so an id never crosses a cut; ``link_tracks`` re-joins a face that
was lost for a moment within a shot; tracks that are too short or too small are dropped.

Conventions: frame ranges are ``[start, end)`` (end exclusive); times are seconds from the first frame;
boxes are frame pixels ``x0 y0 x1 y1`` (pixel-centre convention of ``face.backend``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from finecliper.data.frames import FrameError, FolderFrames, decode_video, open_frames, upright_rgb
from finecliper.face.backend import FaceDetection, assign_track_ids
from finecliper.predict import shots
from finecliper.predict.windows import uniform_times

Progress = Callable[[int, int], None]  # (frames done, frames expected)


@dataclass
class VideoInfo:
    path: Path
    fps: float               # the container's frame rate (frame folders and files without one: the default)
    num_frames: int          # frames actually decoded (the container's count may be wrong)
    frame_hw: tuple[int, int]
    times: np.ndarray        # (num_frames + 1,) float64 seconds: start of each frame, then the end of the last
    fps_from_file: bool = True   # False: a frame folder, or a file without a rate (``default_fps`` used)
    times_from_pts: bool = True  # False: times are frame / fps (no usable timestamps)

    def span_s(self, start: int, end: int) -> float:
        """Duration of frames [start, end)."""
        return float(self.times[end] - self.times[start])


def probe(path: str | Path, default_fps: float = 25.0) -> tuple[float, bool, int]:
    """(fps, known, frame count as the container says) of a video file or frame folder.

    Raises ``FrameError`` naming the file when it cannot be opened.
    """
    src = open_frames(path)  # opens the container: a corrupt file fails here, with its name
    if src.fps and src.fps > 0:
        return float(src.fps), True, int(src.num_frames)
    return float(default_fps), False, int(src.num_frames)


def iter_video(path: str | Path, wanted: Callable[[int], bool] | None = None
               ) -> Iterator[tuple[float | None, float | None, np.ndarray | None]]:
    """(time s, duration s, (H, W, 3) uint8 RGB upright frame) in order; videos decode once, threaded.

    Times and durations come from the stream (None for frame folders or frames without pts).
    ``wanted(i)`` False: frame i is decoded (inter-frame codecs need it) but not converted to RGB, and
    None is given in its place (the conversion is most of the cost at 720p).
    """
    path = Path(path)
    if path.is_dir():
        src = FolderFrames(path)
        for i in range(src.num_frames):
            yield None, None, (src.read([i])[0] if wanted is None or wanted(i) else None)
        return
    for i, frame in enumerate(decode_video(path)):
        tb = frame.time_base
        duration = float(frame.duration * tb) if frame.duration and tb else None
        yield frame.time, duration, (upright_rgb(frame) if wanted is None or wanted(i) else None)


def iter_frames(path: str | Path, wanted: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
    """The frames of :func:`iter_video` without their times."""
    for _, _, frame in iter_video(path, wanted):
        yield frame


def frame_times(times: list[float | None], durations: list[float | None], fps: float) -> tuple[np.ndarray, bool]:
    """(num_frames + 1,) seconds from the first frame from pts, and whether pts were usable.

    Without a time for every frame, or with times that do not increase, frame / fps is used instead.
    The end of the last frame is its start plus its duration (else the median frame interval).
    """
    n = len(times)
    if n == 0 or any(t is None for t in times) or np.any(np.diff(np.asarray(times, np.float64)) <= 0):
        return uniform_times(n, fps), False
    t = np.asarray(times, np.float64) - float(times[0])
    last = durations[-1] if durations and durations[-1] else (float(np.median(np.diff(t))) if n > 1 else 1.0 / fps)
    return np.append(t, t[-1] + last), True


def video_rate(path: str | Path, fps: float) -> Fraction:
    """The stream's frame rate as a Fraction (for writing an overlay at exactly the input rate)."""
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
    cut_distances: np.ndarray               # (N,) colour change from the previous frame (``shots.distance``)
    seconds: dict[str, float] = field(default_factory=dict)  # decode, detect


def shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    """The frame with its longer side at most ``max_side`` (0: as is), area-averaged."""
    h, w = frame.shape[:2]
    s = max_side / max(h, w) if max_side else 1.0
    if s >= 1.0:
        return frame
    return cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def detect_resized(detector: Callable[[np.ndarray], list[FaceDetection]], frame: np.ndarray,
                   max_side: int, small: np.ndarray | None = None) -> list[FaceDetection]:
    """Detect on the frame shrunk to ``max_side`` (``small``, when already made); boxes in frame pixels.

    BlazeFace sees a 192x192 letterboxed input, so shrinking a 720p frame to 640 px first loses
    nothing and halves the detector's own resize.
    """
    small = shrink(frame, max_side) if small is None else small
    if small.shape[:2] == frame.shape[:2]:
        return detector(frame)
    h, w = frame.shape[:2]
    sx, sy = w / small.shape[1], h / small.shape[0]
    out = detector(small)
    for d in out:  # pixel-centre convention: x_big + 0.5 = (x_small + 0.5) * scale
        d.box = ((d.box.reshape(2, 2) + 0.5) * np.array([sx, sy], np.float32) - 0.5).reshape(4).astype(np.float32)
    return out


def scan_video(path: str | Path, detector: Callable[[np.ndarray], list[FaceDetection]],
               default_fps: float = 25.0, detect_size: int = 640, progress: Progress | None = None) -> Scan:
    """Pass 1: decode every frame, detect every face (boxes in frame pixels), measure colour changes."""
    path = Path(path)
    fps, known, expected = probe(path, default_fps)
    dets: list[list[FaceDetection]] = []
    times: list[float | None] = []
    durations: list[float | None] = []
    cuts: list[float] = []
    previous = None
    hw: tuple[int, int] | None = None
    t_detect = 0.0
    t0 = time.perf_counter()
    for t, duration, frame in iter_video(path):
        if hw is None:
            hw = (int(frame.shape[0]), int(frame.shape[1]))
        elif frame.shape[:2] != hw:
            raise FrameError(f"{path}: frame {len(dets)} is {frame.shape[1]}x{frame.shape[0]} but the video started at "
                             f"{hw[1]}x{hw[0]}; re-encode it at one size")
        t1 = time.perf_counter()
        small = shrink(frame, detect_size)
        dets.append(detect_resized(detector, frame, detect_size, small))
        sig = shots.signature(small)
        cuts.append(0.0 if previous is None else shots.distance(previous, sig))
        previous = sig
        t_detect += time.perf_counter() - t1
        times.append(t)
        durations.append(duration)
        if progress is not None:
            progress(len(dets), max(expected, len(dets)))
    total = time.perf_counter() - t0
    if hw is None:
        raise FrameError(f"{path}: no frame could be decoded; the file is empty or corrupt")
    stamps, from_pts = frame_times(times, durations, fps)
    info = VideoInfo(path, fps, len(dets), hw, stamps, known, from_pts)
    return Scan(info, dets, np.asarray(cuts, np.float32), {"decode": total - t_detect, "detect": t_detect})


# ----------------------------------------------------------------------------- tracks

@dataclass
class TrackBoxes:
    """One face followed through the video."""
    track_id: int
    boxes: np.ndarray   # (N, 4) float32 x0 y0 x1 y1, zeros where not found
    found: np.ndarray   # (N,) bool, detected in this frame
    scores: np.ndarray  # (N,) float32 detection confidence, 0 where not found
    shot: int = 0       # the shot it lies in

    @property
    def first(self) -> int:
        return int(np.flatnonzero(self.found)[0])

    @property
    def last(self) -> int:
        return int(np.flatnonzero(self.found)[-1])

    @property
    def end(self) -> int:
        """One past the last frame (end exclusive)."""
        return self.last + 1

    @property
    def area(self) -> float:
        b = self.boxes[self.found]
        return float(((b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)).sum())

    @property
    def size(self) -> float:
        """Median longer side of the detected boxes, pixels."""
        b = self.boxes[self.found]
        return float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))

    @property
    def coverage(self) -> float:
        """Share of the frames of its span where the face was detected."""
        return float(self.found.sum()) / (self.end - self.first)


def _centre_side(box: np.ndarray) -> tuple[np.ndarray, float]:
    return (box[:2] + box[2:]) / 2, float(max(box[2] - box[0], box[3] - box[1]))


def link_tracks(tracks: dict[int, TrackBoxes], times: np.ndarray, max_gap_s: float,
                max_shift: float = 0.75) -> dict[int, TrackBoxes]:
    """Merge a track that starts at most ``max_gap_s`` seconds after another one ended, close to where it ended.

    Close: centre distance <= ``max_shift`` x the mean box side. Tracks that overlap in time are never
    merged (two faces at once are two people). Greedy in order of start; each ended track is continued
    at most once, by the nearest candidate. ``times``: (N + 1,) frame start times (``VideoInfo.times``).
    """
    order = sorted(tracks, key=lambda t: tracks[t].first)
    merged: dict[int, TrackBoxes] = {}
    for tid in order:
        t = tracks[tid]
        c1, s1 = _centre_side(t.boxes[t.first])
        best, best_d = None, np.inf
        for mid, m in merged.items():
            if t.first <= m.last or times[t.first] - times[m.end] > max_gap_s + 1e-6:
                continue
            c0, s0 = _centre_side(m.boxes[m.last])
            d = float(np.linalg.norm(c1 - c0))
            if d <= max_shift * (s0 + s1) / 2 and d < best_d:
                best, best_d = mid, d
        if best is None:
            merged[tid] = TrackBoxes(tid, t.boxes.copy(), t.found.copy(), t.scores.copy(), t.shot)
        else:
            m = merged[best]
            m.boxes[t.found], m.found[t.found], m.scores[t.found] = t.boxes[t.found], True, t.scores[t.found]
    return merged


def shot_tracks(detections: list[list[FaceDetection]], shot: tuple[int, int], index: int, n: int,
                iou_threshold: float, max_missed: int) -> dict[int, TrackBoxes]:
    """IoU tracks of the frames [start, end) of one shot (a tracker of its own: ids cannot leak across a cut)."""
    start, end = shot
    raw: dict[int, TrackBoxes] = {}
    for k, (dets, tid) in enumerate(zip(detections[start:end], assign_track_ids(detections[start:end], iou_threshold,
                                                                                 max_missed)), start):
        for d, i in zip(dets, tid.tolist()):
            t = raw.get(i)
            if t is None:
                t = raw[i] = TrackBoxes(i, np.zeros((n, 4), np.float32), np.zeros(n, bool), np.zeros(n, np.float32), index)
            t.boxes[k], t.found[k], t.scores[k] = d.box, True, d.confidence
    return raw


def face_tracks(detections: list[list[FaceDetection]], times: np.ndarray, shot_list: list[tuple[int, int]] | None = None,
                *, all_faces: bool = False, min_track_s: float = 0.5, min_face_px: float = 32.0,
                link_gap_s: float = 1.0, iou_threshold: float = 0.3, max_missed: int = 5
                ) -> tuple[list[TrackBoxes], int]:
    """(tracks, number of rejected tracks): the face tracks of a video, ids 0, 1, ... in order of first
    appearance (then left to right).

    Every track must last ``min_track_s`` seconds (or half the video, when shorter) from its first to its
    last detection and have a median box side of ``min_face_px`` pixels; shorter or smaller ones are
    spurious detections or faces too small to read, and are counted as rejected. Tracks never cross the
    shot boundaries of ``shot_list`` ([start, end) frame ranges; default one shot). Default: the largest
    face of each shot (largest summed box area: large *and* persistent, as ``face.crop.pick_main_track``);
    ``all_faces``: every face.
    """
    n = len(detections)
    times = np.asarray(times, np.float64)
    min_s = min(min_track_s, 0.5 * float(times[n] - times[0])) if n else min_track_s
    kept: list[TrackBoxes] = []
    rejected = 0
    for index, shot in enumerate(shot_list or [(0, n)]):
        raw = shot_tracks(detections, shot, index, n, iou_threshold, max_missed)
        tracks = list(link_tracks(raw, times, link_gap_s).values())
        ok = [t for t in tracks if times[t.end] - times[t.first] >= min_s - 1e-6 and t.size >= min_face_px]
        rejected += len(tracks) - len(ok)
        kept += ok if all_faces or not ok else [max(ok, key=lambda t: t.area)]
    kept.sort(key=lambda t: (t.first, float(t.boxes[t.first][0])))
    for k, t in enumerate(kept):
        t.track_id = k
    return kept, rejected
