"""Window planning: which frames of a face track each model call sees (pure, no I/O).

A track spanning frames ``[start, end)`` is cut into windows of ``window_s`` seconds every ``stride_s``
seconds, in the video's own time (frame start times from the stream's pts, so variable-frame-rate
videos get windows of true length); each window is the frames whose start time lies in it, sampled like
a test clip (``sample_segment_indices``: the centres of ``num_frames`` equal segments, padding by
repeating the last frame when it is shorter). A span no longer than one window is one window, so a
DFEW-like clip gets exactly the evaluation protocol. When the strided windows stop short of the span's
end, one more window is aligned to the end, so no frame is left unseen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finecliper.data.sampling import sample_segment_indices

EPS = 1e-6  # seconds: pts-derived times are floats; a frame "at" a window edge belongs to the window it starts


@dataclass(frozen=True)
class Window:
    start: int            # first frame (inclusive), video frame index
    end: int              # last frame + 1 (exclusive)
    indices: tuple[int, ...]  # (num_frames,) sampled video frame indices, within [start, end)
    start_s: float        # start time of frame ``start``
    end_s: float          # start time of frame ``end`` (= end of the last frame)

    def __contains__(self, frame: int) -> bool:
        return self.start <= frame < self.end


def uniform_times(num_frames: int, fps: float) -> np.ndarray:
    """(num_frames + 1,) frame start times of a constant-rate video."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return np.arange(num_frames + 1, dtype=np.float64) / fps


def plan_windows(first: int, last: int, fps: float | None, num_frames: int, window_s: float = 3.0,
                 stride_s: float = 1.5, times: np.ndarray | None = None) -> list[Window]:
    """Windows over frames ``first..last`` (inclusive) of a video.

    ``times``: (>= last + 2,) frame start times in seconds (``VideoInfo.times``); default frame / ``fps``.
    Span [t0, t1) = [times[first], times[last + 1]). Span <= window_s: one window over the whole span.
    Otherwise windows start at t0, t0 + stride_s, ... while they fit, plus one ending at t1 if the
    span's tail is not covered. ``num_frames`` 0: ``indices`` are every frame of the window.
    """
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window and stride must be positive seconds, got window={window_s}, stride={stride_s}")
    if first < 0 or last < first:
        raise ValueError(f"empty frame span {first}..{last}")
    t = np.asarray(times if times is not None else uniform_times(last + 1, fps or 0.0), np.float64)
    if len(t) < last + 2:
        raise ValueError(f"times cover {len(t) - 1} frames, the span needs {last + 1}")
    t0, t1 = float(t[first]), float(t[last + 1])
    if t1 - t0 <= window_s + EPS:
        spans = [(first, last + 1)]
    else:
        starts = list(np.arange(t0, t1 - window_s + EPS, stride_s))
        if starts[-1] + window_s < t1 - EPS:
            starts.append(t1 - window_s)
        spans = []
        for s in starts:
            a = int(np.searchsorted(t, s - EPS, side="left"))
            b = int(np.searchsorted(t, s + window_s - EPS, side="left"))
            spans.append((max(a, first), min(max(b, a + 1), last + 1)))
    out = []
    for a, b in dict.fromkeys(spans):  # unique, in order
        idx = range(a, b) if num_frames == 0 else a + sample_segment_indices(b - a, num_frames)
        out.append(Window(a, b, tuple(int(i) for i in idx), float(t[a]), float(t[b])))
    return out


def windows_covering(windows: list[Window], frame: int) -> list[int]:
    """Positions of the windows whose span holds ``frame``."""
    return [k for k, w in enumerate(windows) if frame in w]


def needed_frames(windows: list[Window]) -> np.ndarray:
    """Sorted unique frame indices the windows sample."""
    if not windows:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate([np.asarray(w.indices, np.int64) for w in windows]))
