"""Tiny synthetic clips for tests and benchmarks: frame folders and video files whose frame ``i``
is a flat grey level ``frame_level(i)`` (plus an optional pattern), so a decoded frame tells which
index it came from even after lossy JPEG / MPEG-4 coding."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def frame_level(i: int) -> int:
    """Grey level of synthetic frame i (distinct for i < 80; lossy coding keeps it within ±1)."""
    return 10 + 3 * (i % 80)


def level_to_index(frame: np.ndarray) -> int:
    return int(round((float(frame.mean()) - 10) / 3))


def synthetic_frames(n: int, h: int, w: int, *, pattern: bool = False, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8 RGB. ``pattern`` adds smooth texture (for benchmarks)."""
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i] = frame_level(i)
    if pattern:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:h, 0:w]
        tex = (20 * np.sin(xx / 7.0 + rng.uniform(0, 6)) * np.cos(yy / 9.0)).astype(np.int16)
        out = np.clip(out.astype(np.int16) + tex[None, :, :, None], 0, 255).astype(np.uint8)
    return out


def write_frame_folder(path: str | Path, n: int, h: int = 32, w: int = 32, *, ext: str = ".jpg",
                       name: str = "{i}", pattern: bool = False) -> Path:
    """Write n frames as ``<name>.<ext>`` (default names 0.jpg, 1.jpg, …, 10.jpg: natural order matters)."""
    import cv2

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(synthetic_frames(n, h, w, pattern=pattern)):
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(path / (name.format(i=i) + ext)), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), params):
            raise OSError(f"could not write {path / (name.format(i=i) + ext)}")
    return path


def write_video(path: str | Path, n: int, h: int = 32, w: int = 32, *, fps: int = 25, codec: str = "mpeg4",
                pattern: bool = False) -> Path:
    """Write n frames to a video file with PyAV (mpeg4: fast to encode, every codec build has it)."""
    from finecliper.data.frames import write_video as encode

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # near-lossless MPEG-4, so that decoded pixels still encode their frame index
    opts = {"qscale": "2", "qmin": "1", "qmax": "2"} if codec == "mpeg4" else None
    encode(path, synthetic_frames(n, h, w, pattern=pattern), fps, codec=codec, options=opts)
    return path
