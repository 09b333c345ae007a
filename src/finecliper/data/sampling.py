"""TSN-style segment sampling of 16 frames (DFER-CLIP's video_dataloader, reference §5.5)."""
from __future__ import annotations

import numpy as np

PAD_MODES = ("last", "first", "loop")


def pad_indices(n_frames: int, n_segments: int, pad: str = "last") -> np.ndarray:
    """Indices for a clip with n_frames <= n_segments: 0..n-1, then padding up to n_segments.

    ``last`` repeats the final frame (DFER-CLIP PR#1; the default), ``first`` repeats frame 0
    (DFER-CLIP's original code), ``loop`` cycles 0..n-1 again.
    """
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    base = np.arange(n_frames, dtype=np.int64)
    k = n_segments - n_frames
    if pad == "last":
        return np.concatenate([base, np.full(k, n_frames - 1, np.int64)])
    if pad == "first":
        return np.concatenate([base, np.zeros(k, np.int64)])
    return np.arange(n_segments, dtype=np.int64) % n_frames


def sample_segment_indices(n_frames: int, n_segments: int = 16, train: bool = False,
                           rng: np.random.Generator | None = None, pad: str = "last") -> np.ndarray:
    """(n_segments,) int64 frame indices into a clip of ``n_frames`` frames.

    train: ``avg = n // T``; if avg > 0, ``idx_k = k*avg + U{0..avg-1}`` (one random frame in each of
    T equal segments; frames past T*avg are never used, as in DFER-CLIP).
    eval:  if n > T, ``tick = n / T`` and ``idx_k = floor(tick/2 + k*tick)`` (segment centres).
    Otherwise (n <= T in eval, n < T in train) the clip is padded per ``pad``.
    """
    if n_frames <= 0:
        raise ValueError(f"cannot sample from a clip with {n_frames} frames")
    if n_segments <= 0:
        raise ValueError(f"n_segments must be positive, got {n_segments}")
    if pad not in PAD_MODES:
        raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
    T = n_segments
    if train:
        if rng is None:
            raise ValueError("training sampling needs an rng (np.random.Generator)")
        avg = n_frames // T
        if avg > 0:
            return np.arange(T, dtype=np.int64) * avg + rng.integers(0, avg, size=T)
        # DFER-CLIP's "n > T: sorted uniform random" branch is unreachable with duration=1.
        return pad_indices(n_frames, T, pad)
    if n_frames > T:
        tick = n_frames / T
        return np.floor(tick / 2.0 + np.arange(T) * tick).astype(np.int64)
    return pad_indices(n_frames, T, pad)
