"""The input video with each face box, its track id and the running label drawn on every frame.

Running label of a frame: the mean probabilities of the windows of that track whose span holds the
frame. The output has exactly the input's frames and frame rate (PyAV, libx264, else mpeg4); odd
frame sizes get one black row/column (yuv420p needs even sizes). Written to a temp file, then renamed.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from finecliper.data.frames import write_video
from finecliper.predict.pipeline import TrackResult, VideoResult
from finecliper.predict.video import iter_frames, video_rate

# RGB per track id (cycled)
TRACK_COLOURS = [(0, 220, 0), (255, 140, 0), (0, 160, 255), (255, 0, 200), (255, 230, 0), (0, 230, 230), (170, 90, 255)]


def running_probs(track: TrackResult, frame: int) -> np.ndarray | None:
    """Mean window probabilities at ``frame`` (None when no window of the track holds it)."""
    ps = [w.probs for w in track.windows if w.start_frame <= frame < w.end_frame]
    return np.mean(ps, axis=0) if ps else None


def draw_frame(frame: np.ndarray, result: VideoResult, i: int, top: int = 3) -> np.ndarray:
    """Frame i (H, W, 3) RGB -> a copy with every track found in it drawn."""
    img = frame.copy()
    h = img.shape[0]
    scale = max(0.35, h / 900)
    thick = max(1, int(round(h / 360)))
    line = int(26 * scale) + 4
    for t in result.tracks:
        if not t.face_valid[i]:
            continue
        col = TRACK_COLOURS[t.track_id % len(TRACK_COLOURS)]
        x0, y0, x1, y1 = (int(round(v)) for v in t.boxes[i])
        cv2.rectangle(img, (x0, y0), (x1, y1), col, thick, cv2.LINE_AA)
        p = running_probs(t, i)
        lines = [f"id {t.track_id}"]
        if p is not None:
            order = np.argsort(p)[::-1][:top]
            lines[0] += f": {result.classes[order[0]]}"
            lines += [f"{result.classes[c]} {p[c]:.2f}" for c in order]
        y = max(line * len(lines), y0 - 4)  # above the box, kept inside the frame
        for k, text in enumerate(lines):
            yy = y - (len(lines) - 1 - k) * line
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            cv2.rectangle(img, (x0, yy - th - base), (x0 + tw + 4, yy + base // 2), (0, 0, 0), -1)
            cv2.putText(img, text, (x0 + 2, yy - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, col, thick, cv2.LINE_AA)
    return img


def write_overlay(video: str | Path, out: str | Path, result: VideoResult, top: int = 3) -> int:
    """Write the annotated video; returns the number of frames written (= the input's)."""
    video, out = Path(video), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix or ".mp4")
    os.close(fd)
    try:
        def drawn():
            for n, frame in enumerate(iter_frames(video)):
                if n >= result.num_frames:
                    break
                yield draw_frame(frame, result, n, top)

        n = write_video(tmp, drawn(), video_rate(video, result.fps), crf=18)
        if n != result.num_frames:
            raise OSError(f"{video}: decoded {n} frames for the overlay but {result.num_frames} before; "
                          f"the file changed while predicting")
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return n
