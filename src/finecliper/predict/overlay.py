"""The input video with each face box, its id and the running label drawn on every frame.

Running label of a frame: the mean probabilities of the windows of that track whose span holds the
frame (as the per-frame table). Labels sit above their box, else below it, else at the nearest free
height (:func:`place_labels`), so the labels of neighbouring faces never cover each other. The output
has exactly the input's frames and frame rate (PyAV, libx264, else mpeg4); odd frame sizes get one black
row/column (yuv420p needs even sizes). Written to a temp file, then renamed.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from finecliper.data.frames import write_video
from finecliper.predict.pipeline import VideoResult, frame_probs
from finecliper.predict.video import iter_frames, video_rate

# RGB per track id (cycled)
TRACK_COLOURS = [(0, 220, 0), (255, 140, 0), (0, 160, 255), (255, 0, 200), (255, 230, 0), (0, 230, 230), (170, 90, 255)]
FONT = cv2.FONT_HERSHEY_SIMPLEX
GAP = 2  # pixels between a label and its box, so the box's edge stays visible

Rect = tuple[int, int, int, int]  # x, y, w, h


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def place_labels(boxes: list[tuple[float, float, float, float]], sizes: list[tuple[int, int]],
                 frame_hw: tuple[int, int]) -> list[Rect]:
    """Label rectangles (x, y, w, h) for face boxes (x0, y0, x1, y1) and label sizes (w, h), in pixels.

    Each label is left-aligned with its box (moved inside the frame) and tried above the box, below it,
    then at every other height nearest to those, until it covers no label placed before it (labels are
    placed left to right). Labels never overlap each other unless the frame has no free height left.
    """
    fh, fw = frame_hw
    placed: list[Rect] = []
    out: list[Rect | None] = [None] * len(boxes)
    for k in sorted(range(len(boxes)), key=lambda k: (boxes[k][0], boxes[k][1])):
        x0, y0, x1, y1 = boxes[k]
        w, h = sizes[k]
        x = int(min(max(0, round(x0)), max(0, fw - w)))
        above, below = int(round(y0)) - h - GAP, int(round(y1)) + GAP + 1
        heights = [y for y in (above, below) if 0 <= y <= fh - h]
        heights += sorted(range(0, max(1, fh - h + 1)), key=lambda y: min(abs(y - above), abs(y - below)))
        rect = (x, heights[0], w, h)
        for y in heights:
            cand = (x, y, w, h)
            if not any(_overlaps(cand, p) for p in placed):
                rect = cand
                break
        placed.append(rect)
        out[k] = rect
    return out  # type: ignore[return-value]


def draw_frame(frame: np.ndarray, result: VideoResult, i: int, probs: list[np.ndarray], top: int = 3) -> np.ndarray:
    """Frame i (H, W, 3) RGB -> a copy with every track found in it drawn; ``probs``: per track, its
    ``frame_probs`` (N, K), NaN rows where no window holds the frame."""
    img = frame.copy()
    h = img.shape[0]
    scale = max(0.35, h / 900)
    thick = max(1, int(round(h / 360)))
    line = int(26 * scale) + 4
    shown, boxes, texts, sizes = [], [], [], []
    for t, track_probs in zip(result.tracks, probs):
        if not t.face_valid[i]:
            continue
        col = TRACK_COLOURS[t.track_id % len(TRACK_COLOURS)]
        box = t.boxes[i]
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(img, (x0, y0), (x1, y1), col, thick, cv2.LINE_AA)
        p = track_probs[i]
        lines = [f"id {t.track_id}"]
        if not np.isnan(p).any():
            order = np.argsort(p)[::-1][:top]
            lines[0] += f": {result.classes[order[0]]}"
            lines += [f"{result.classes[c]} {p[c]:.2f}" for c in order]
        width = max(cv2.getTextSize(s, FONT, scale, thick)[0][0] for s in lines) + 4
        shown.append(col)
        boxes.append(tuple(float(v) for v in box))
        texts.append(lines)
        sizes.append((width, line * len(lines)))
    for col, lines, (x, y, w, hh) in zip(shown, texts, place_labels(boxes, sizes, img.shape[:2])):
        cv2.rectangle(img, (x, y), (x + w - 1, y + hh - 1), (0, 0, 0), -1)
        for k, text in enumerate(lines):
            cv2.putText(img, text, (x + 2, y + (k + 1) * line - 4), FONT, scale, col, thick, cv2.LINE_AA)
    return img


def write_overlay(video: str | Path, out: str | Path, result: VideoResult, top: int = 3) -> int:
    """Write the annotated video; returns the number of frames written (= the input's)."""
    video, out = Path(video), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=out.suffix or ".mp4")
    os.close(fd)
    probs = [frame_probs(t, result.num_frames) for t in result.tracks]  # once, not per frame
    try:
        def drawn():
            for n, frame in enumerate(iter_frames(video)):
                if n >= result.num_frames:
                    break
                yield draw_frame(frame, result, n, probs, top)

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
