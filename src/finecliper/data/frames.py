"""Frame sources: a folder of images or a video file, read by frame index.

``open_frames(path)`` returns a :class:`FrameSource`; ``.read(indices)`` gives (T, H, W, 3) uint8 RGB.
Folders list jpg/jpeg/png in natural order (frame_2 before frame_10). Videos are decoded with PyAV
(FFmpeg, ``thread_type="AUTO"``), stopping after the last frame that is needed.

Frames are always returned as they are meant to be seen. Videos: every decode path goes through
:func:`decode_video` + :func:`upright_rgb`, which turns each frame by the stream's display rotation (the
display-matrix side data phones write instead of rotating the pixels; PyAV's ``VideoFrame.rotation``,
counter-clockwise degrees, rounded to quarter turns). Images: ``cv2.imread`` applies the EXIF orientation.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

import numpy as np

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
VIDEO_EXTS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")


class FrameError(OSError):
    """A clip on disk that is missing, empty or cannot be decoded."""


class FrameSource(Protocol):
    path: Path
    num_frames: int
    fps: float | None

    def read(self, indices: Sequence[int]) -> np.ndarray: ...  # (T, H, W, 3) uint8 RGB


def display_quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns (0-3) that bring a decoded ``av.VideoFrame`` upright."""
    return int(round(float(frame.rotation) / 90.0)) % 4


def upright_rgb(frame) -> np.ndarray:
    """A decoded ``av.VideoFrame`` as (H, W, 3) uint8 RGB, turned by its display rotation."""
    rgb = frame.to_ndarray(format="rgb24")
    k = display_quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def decode_video(path: str | Path) -> Iterator:
    """The decoded ``av.VideoFrame`` objects of a video's first video stream, in order (threaded decode).

    Convert each with :func:`upright_rgb` (or skip the conversion of frames that are not needed).
    Errors name the file and raise ``FrameError``.
    """
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise FrameError(f"{path}: no video stream in the file")
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            yield from c.decode(s)
    except FrameError:
        raise
    except Exception as e:  # av.error.* : corrupt or truncated data
        raise FrameError(f"{path}: decoding failed ({type(e).__name__}: {e}); the file is corrupt or truncated") from e


def natural_key(name: str) -> list:
    """'frame_10.jpg' sorts after 'frame_2.jpg'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _check_indices(indices: Sequence[int], n: int, path: Path) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise IndexError(f"{path}: frame indices must lie in 0..{n - 1}, got {idx.min()}..{idx.max()}")
    return idx


class FolderFrames:
    """A folder of jpg/jpeg/png frames (the DFEW/FERV39k/MAFW face-crop variants)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_dir():
            raise FrameError(f"frame folder not found: {self.path}")
        self.files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTS),
                            key=lambda p: natural_key(p.name))
        if not self.files:
            raise FrameError(f"{self.path}: folder holds no jpg/jpeg/png frames; re-extract this clip "
                             f"or remove it from the split")
        self.num_frames = len(self.files)
        self.fps: float | None = None

    def read(self, indices: Sequence[int]) -> np.ndarray:
        import cv2

        idx = _check_indices(indices, self.num_frames, self.path)
        cache: dict[int, np.ndarray] = {}
        out = []
        for i in idx.tolist():
            if i not in cache:  # padded clips repeat indices: decode once
                f = self.files[i]
                img = cv2.imread(str(f), cv2.IMREAD_COLOR)
                if img is None:
                    raise FrameError(f"{f}: unreadable image (corrupt or not an image); re-extract the clip")
                cache[i] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
            out.append(cache[i])
        shapes = {a.shape for a in out}
        if len(shapes) > 1:
            raise FrameError(f"{self.path}: frames differ in size {sorted(shapes)}; resize them to one size")
        return np.stack(out) if out else np.zeros((0, 0, 0, 3), np.uint8)


class VideoFrames:
    """A video file, decoded with PyAV up to the last requested frame."""

    def __init__(self, path: str | Path):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise FrameError(f"video file not found: {self.path}")
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    raise FrameError(f"{self.path}: no video stream in the file")
                s = c.streams.video[0]
                n = int(s.frames or 0)
                self.fps = float(s.average_rate) if s.average_rate else None
                if n <= 0:  # container without a frame count: count packets (demux only, no decode)
                    n = sum(1 for p in c.demux(s) if p.size)
        except FrameError:
            raise
        except Exception as e:  # av.error.* and friends: the file is not a readable video
            raise FrameError(f"{self.path}: cannot open video ({type(e).__name__}: {e}); the file is corrupt "
                             f"or not a video") from e
        if n <= 0:
            raise FrameError(f"{self.path}: video has no frames")
        self.num_frames = n

    def read(self, indices: Sequence[int]) -> np.ndarray:
        idx = _check_indices(indices, self.num_frames, self.path)
        if idx.size == 0:
            return np.zeros((0, 0, 0, 3), np.uint8)
        wanted = set(idx.tolist())
        last = int(idx.max())
        got: dict[int, np.ndarray] = {}
        frames = decode_video(self.path)
        try:
            for i, frame in enumerate(frames):
                if i in wanted:
                    got[i] = upright_rgb(frame)
                if i >= last:
                    break
        finally:
            frames.close()
        missing = wanted - got.keys()
        if missing:
            raise FrameError(f"{self.path}: the container reports {self.num_frames} frames but frame {min(missing)} "
                             f"could not be decoded; the file is truncated or its frame count is wrong "
                             f"(run `finecliper prepare` to find such clips)")
        return np.stack([got[i] for i in idx.tolist()])


def open_frames(path: str | Path) -> FrameSource:
    """A folder of frames or a video file."""
    path = Path(path)
    if path.is_dir():
        return FolderFrames(path)
    if path.is_file():
        return VideoFrames(path)
    raise FrameError(f"clip not found: {path} (neither a frame folder nor a video file)")


def resolve_clip_path(data_root: str | Path, record) -> Path:
    """Where ``record`` (a ClipRecord or a relative path) lives under ``data_root``.

    Tries the folder ``<root>/<path>``, then ``<root>/<path><ext>`` for common video extensions, and
    ``<root>/<path>`` as a file when the record already names one ('03747.mp4').
    """
    root = Path(data_root)
    rel = getattr(record, "path", record)
    base = root / str(rel)
    if base.is_dir():
        return base
    if base.is_file() and base.suffix.lower() in VIDEO_EXTS:
        return base
    tried = [base]
    for ext in VIDEO_EXTS + tuple(e.upper() for e in VIDEO_EXTS):
        cand = base.with_name(base.name + ext)
        if cand.is_file():
            return cand
    tried.append(base.with_name(base.name + "{" + ",".join(VIDEO_EXTS) + "}"))
    raise FrameError(f"clip {rel!r} not found under {root}: tried {', '.join(str(t) for t in tried)}. "
                     f"Check data.root / data.variant (the folder that holds the clip folders or videos).")


def clips_root(root: str | Path, variant: str) -> Path:
    """The folder that holds the clip folders/videos: ``root/variant``, DFEW's ``root/Clip/variant``,
    or ``root`` itself when it already is the variant folder (or variant is '.' / '')."""
    root = Path(root)
    if variant in ("", "."):
        cands = [root]
    else:
        cands = [root / variant, root / "Clip" / variant]
        if root.name == variant:
            cands.insert(0, root)
    for c in cands:
        if c.is_dir():
            return c
    raise FrameError(f"frame variant {variant!r} not found: tried {', '.join(map(str, cands))}. "
                            f"Set data.root to the dataset folder and data.variant to the frame folder name.")


def available_video_codec(preferred: str = "libx264") -> str:
    """``preferred`` if this PyAV/FFmpeg build can encode it, else MPEG-4 (every build has it)."""
    import av

    try:
        av.codec.Codec(preferred, "w")
        return preferred
    except Exception:  # a build without that encoder
        return "mpeg4"


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float, *, codec: str = "libx264",
                crf: int = 18, options: dict[str, str] | None = None) -> int:
    """Encode RGB uint8 frames (H, W, 3) with PyAV; returns the number of frames written.

    H.264 at ``crf`` by default (MPEG-4 where the build lacks x264); odd sizes are padded by one
    black row/column, since yuv420p needs even dimensions.
    """
    import av
    from fractions import Fraction

    codec = available_video_codec(codec)
    n = 0
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        if options is not None:
            s.options = dict(options)
        elif codec == "libx264":
            s.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            s.options = {"qscale": "2"}
        for f in frames:
            h, w = f.shape[:2]
            if n == 0:
                s.width, s.height, s.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
            if (h + h % 2, w + w % 2) != (s.height, s.width):
                raise ValueError(f"{path}: frame {n} is {w}x{h}, earlier frames were {s.width}x{s.height}")
            if h % 2 or w % 2:
                f = np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)))
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(pkt)
            n += 1
        for pkt in s.encode():
            c.mux(pkt)
    return n
