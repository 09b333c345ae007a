"""Face extraction speed: frames/s on ONE core for a frame folder and a video, end to end and per stage.

    .venv/bin/python benchmarks/face_extract.py [--frames 96] [--size 224]

Clips are made from skimage's astronaut (a real face) with small per-frame shifts, as a DFER face-crop
clip would look. Figures: decode, mediapipe mesh (video and static mode), parsing rasterisation, cache
write, the whole `extract` path, and the per-item cost of rendering the maps in the Dataset.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def make_frames(n: int, size: int) -> np.ndarray:
    from skimage import data

    img = data.astronaut()
    out = []
    for k in range(n):
        dx, dy = int(6 * np.sin(k / 5)), int(4 * np.cos(k / 7))
        crop = img[30 + dy:230 + dy, 125 + dx:325 + dx]
        out.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def write_clips(frames: np.ndarray, root: Path) -> tuple[Path, Path]:
    from finecliper.data.frames import write_video

    folder = root / "folder_clip"
    folder.mkdir()
    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"{k:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    video = root / "video_clip.mp4"
    write_video(video, frames, 25)
    return folder, video


def timed(fn, repeat: int = 1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    cv2.setNumThreads(1)

    from finecliper.data.augment import sample_geom
    from finecliper.face.cache import cache_path, save_face_cache
    from finecliper.face.extract import ExtractConfig, extract_clip, iter_chunks, make_analyser, run_extraction
    from finecliper.face.maps_extra import render_clip_maps
    from finecliper.face.mediapipe_backend import frame_to_map, rasterise_mesh

    n = args.frames
    frames = make_frames(n, args.size)
    rows: list[tuple[str, float, str]] = []

    def row(name: str, seconds: float, count: int, unit: str = "frames") -> None:
        rows.append((name, seconds / count * 1000, f"{count / seconds:8.1f} {unit}/s"))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, video = write_clips(frames, tmp)
        cfg = ExtractConfig()
        an = make_analyser(cfg)
        an.analyse(frames[:2], video=True)  # warm-up: graph creation, XNNPACK init

        for name, path in (("decode jpg folder", folder), ("decode mp4 (PyAV)", video)):
            t, _ = timed(lambda: [c for c in iter_chunks(path, cfg.chunk)], 3)
            row(name, t, n)
        t, dets = timed(lambda: an.detect(frames, video=True), 2)
        row("mesh, video mode (tracking)", t, n)
        t, _ = timed(lambda: an.detect(frames, video=False), 1)
        row("mesh, static mode (detect every frame)", t, n)
        hw = (args.size, args.size)
        t, _ = timed(lambda: [rasterise_mesh(frame_to_map(d[0].points, hw, hw), hw) for d in dets], 3)
        row("parsing rasterisation (fillPoly)", t, n)
        track = an.analyse(frames, video=True)
        t, _ = timed(lambda: save_face_cache(tmp / "x.npz", track, clip_id="x", extractor_hash="h"), 3)
        row("cache write (npz, compressed)", t, n)
        for name, path in (("extract_clip, jpg folder", folder), ("extract_clip, mp4", video)):
            t, _ = timed(lambda: extract_clip(path, an, cfg), 2)
            row(name, t, n)
        t, s = timed(lambda: run_extraction([("a", folder), ("b", video)], tmp / "cache", cfg, workers=1), 1)
        row("run_extraction, 2 clips, 1 worker (incl. start)", t, s.frames)
        geom = sample_geom(np.random.default_rng(0), args.size, args.size, out_size=224)
        sub = track.select(np.linspace(0, n - 1, 16).astype(int))
        t, _ = timed(lambda: render_clip_maps(sub, geom, hw), 5)
        row("Dataset: render 16 parsing+landmark maps", t, 1, "clips")
        assert cache_path(tmp / "cache", "a").is_file()

    print(f"\nface extraction, {n} frames of {args.size}x{args.size}, one core (cv2/OMP threads = 1)")
    print(f"{'stage':50s} {'ms/item':>9s} {'rate':>18s}")
    for name, ms, rate in rows:
        print(f"{name:50s} {ms:9.2f} {rate:>18s}")


if __name__ == "__main__":
    main()
