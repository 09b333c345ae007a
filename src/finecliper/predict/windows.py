"""Window planning: which frames of a face track each model call sees (pure, no I/O).

A track spanning frames ``[first, last]`` is cut into windows of ``window_s`` seconds every ``stride_s``
seconds; each window is then sampled like a test clip (``sample_segment_indices``: the centres of
``num_frames`` equal segments, padding by repeating the last frame when it is shorter). A span no
longer than one window is one window, so a DFEW-like clip gets exactly the evaluation protocol.
When the strided windows stop short of the span's end, one more window is aligned to the end, so no
frame is left unseen.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from finecliper.data.sampling import sample_segment_indices


@dataclass(frozen=True)
class Window:
    start: int            # first frame (inclusive), video frame index
    end: int              # last frame + 1 (exclusive)
    indices: tuple[int, ...]  # (num_frames,) sampled video frame indices, within [start, end)
    fps: float

    @property
    def start_s(self) -> float:
        return self.start / self.fps

    @property
    def end_s(self) -> float:
        return self.end / self.fps

    def __contains__(self, frame: int) -> bool:
        return self.start <= frame < self.end


def window_frames(fps: float, seconds: float) -> int:
    """A duration in whole frames (at least 1)."""
    return max(1, int(round(seconds * fps)))


def plan_windows(first: int, last: int, fps: float, num_frames: int, window_s: float = 3.0,
                 stride_s: float = 1.5) -> list[Window]:
    """Windows over frames ``first..last`` (inclusive) of a video at ``fps``.

    Window length L = round(window_s * fps) frames, stride D = round(stride_s * fps) frames.
    Span n = last - first + 1 <= L: one window over the whole span. Otherwise windows start at
    first, first + D, ... while they fit, plus one ending at ``last`` if the span's tail is not covered.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window and stride must be positive seconds, got window={window_s}, stride={stride_s}")
    if first < 0 or last < first:
        raise ValueError(f"empty frame span {first}..{last}")
    n = last - first + 1
    length, stride = window_frames(fps, window_s), window_frames(fps, stride_s)
    if n <= length:
        starts = [first]
        length = n
    else:
        starts = list(range(first, last - length + 2, stride))
        if starts[-1] + length < last + 1:
            starts.append(last + 1 - length)
    return [Window(s, s + length, tuple(int(i) for i in s + sample_segment_indices(length, num_frames)), float(fps))
            for s in starts]


def windows_covering(windows: list[Window], frame: int) -> list[int]:
    """Positions of the windows whose span holds ``frame``."""
    return [k for k, w in enumerate(windows) if frame in w]


def needed_frames(windows: list[Window]) -> np.ndarray:
    """Sorted unique frame indices the windows sample."""
    if not windows:
        return np.zeros(0, np.int64)
    return np.unique(np.concatenate([np.asarray(w.indices, np.int64) for w in windows]))
