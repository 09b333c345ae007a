"""Static-baseline speed: clips/s of a baseline (default: fer's FER2013 tflite) on generated clips.

    .venv/bin/python benchmarks/baselines.py [--clips 20] [--frames 16] [--size 224] [--threads 1]

Clips are made from skimage's astronaut (a real face) with per-frame shifts and per-clip brightness,
as DFER face-crop clips look. Two figures, per clip of ``--frames`` sampled frames:
- ``cache``: boxes already in a face cache -> crop + classify + aggregate + map (what
  ``evaluate_baseline`` costs per clip besides decoding, with a cache);
- ``detect``: our LiteRT face detector on the sampled frames first (the no-cache path).
``benchmark_baseline()`` returns the figures as a dict, so other figures (finecliper predict) can be
printed beside them.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402


def make_clips(n_clips: int, n_frames: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """n_clips arrays (T, S, S, 3) uint8 of the astronaut's face, shifted per frame, brightness per clip."""
    from skimage import data

    img = data.astronaut()
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n_clips):
        gain, phase = rng.uniform(0.8, 1.1), rng.uniform(0, 6.3)
        frames = []
        for k in range(n_frames):
            dx, dy = int(6 * np.sin(k / 3 + phase)), int(4 * np.cos(k / 4 + phase))
            crop = img[30 + dy:230 + dy, 125 + dx:325 + dx].astype(np.float32) * gain
            frames.append(cv2.resize(np.clip(crop, 0, 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA))
        clips.append(np.stack(frames))
    return clips


def benchmark_baseline(classifier=None, n_clips: int = 20, num_frames: int = 16, size: int = 224,
                       threads: int = 1, detect: bool = True) -> dict[str, float]:
    """Figures: ``cache_clips_per_s``, ``cache_ms_per_frame``, ``detect_clips_per_s``, ``detect_ms_per_frame``,
    ``happy_share`` (fraction of clips predicted happiness: a check that the numbers come from real work)."""
    from finecliper.baselines.base import NO_PREDICTION, map_to_dataset, predict_labels
    from finecliper.baselines.evaluate import FaceBoxSource, classify_clip
    from finecliper.baselines.fer_tflite import FerClassifier
    from finecliper.data import labels as L

    clf = classifier or FerClassifier(num_threads=threads)
    clips = make_clips(n_clips, num_frames, size)
    src = FaceBoxSource(None)
    boxes = [src.boxes("bench", c, np.arange(num_frames)) for c in clips]  # the "cache" (untimed)
    classes = L.classes("dfew")
    classify_clip(clf, clips[0], *boxes[0])  # warm-up: tensor allocation

    t0 = time.perf_counter()
    probs = [map_to_dataset(classify_clip(clf, c, b, v), clf.class_names, clf.mapping, classes)
             for c, (b, v) in zip(clips, boxes)]
    t_cache = time.perf_counter() - t0
    preds = predict_labels(np.stack(probs))
    out = {"clips": n_clips, "frames_per_clip": num_frames, "size": size,
           "cache_clips_per_s": n_clips / t_cache, "cache_ms_per_frame": 1000 * t_cache / (n_clips * num_frames),
           "happy_share": float(np.mean(preds == 0)), "no_prediction": int(np.sum(preds == NO_PREDICTION))}
    if detect:
        t0 = time.perf_counter()
        for c in clips:
            b, v = src.boxes("bench", c, np.arange(num_frames))
            map_to_dataset(classify_clip(clf, c, b, v), clf.class_names, clf.mapping, classes)
        t_det = time.perf_counter() - t0
        out.update(detect_clips_per_s=n_clips / t_det, detect_ms_per_frame=1000 * t_det / (n_clips * num_frames))
    src.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-detect", action="store_true", help="skip the face-detection (no-cache) figure")
    a = ap.parse_args()
    r = benchmark_baseline(n_clips=a.clips, num_frames=a.frames, size=a.size, threads=a.threads, detect=not a.no_detect)
    print(f"fer baseline, {r['clips']} clips x {r['frames_per_clip']} frames of {r['size']}px, {a.threads} thread(s)")
    print(f"  with a face cache : {r['cache_clips_per_s']:8.1f} clips/s  "
          f"({r['cache_ms_per_frame']:.2f} ms/frame: crop + fer + aggregate)")
    if "detect_clips_per_s" in r:
        print(f"  detected boxes    : {r['detect_clips_per_s']:8.1f} clips/s  "
              f"({r['detect_ms_per_frame']:.2f} ms/frame: detect + crop + fer)")
    print(f"  predicted happiness on {100 * r['happy_share']:.0f} % of the (smiling) clips, "
          f"{r['no_prediction']} without a face")


if __name__ == "__main__":
    main()
