"""What the safety of a run costs: the up-front face-cache check, and the atomic checkpoint swap.

    .venv/bin/python benchmarks/run_safety.py [--clips 300] [--frames 16] [--size 112]

1. ``FaceMapsExtra.check`` (every clip's cache file opened, its extractor hash read) against loading
   every file fully (what the first epoch would do anyway): the check costs this share of one pass.
2. Saving last/ (safetensors + state.pt into a temp folder, fsync, two renames, previous/ kept) for the
   base variant's tunable tensors at the ViT-B/16 shape with SGD momentum, against one plain
   ``torch.save`` of the same tensors to a file.
"""
from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from finecliper.clip.tokenizer import load_tokenizer
from finecliper.data.splits import ClipRecord
from finecliper.face.backend import FaceTrack
from finecliper.face.cache import cache_path, load_face_cache, open_or_create, save_face_cache
from finecliper.face.maps_extra import FaceMapsExtra
from finecliper.model import factory
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.shapes import random_clip


def face_cache_check(root: Path, clips: int, frames: int, size: int) -> tuple[float, float]:
    manifest = open_or_create(root, {"benchmark": True})
    rng = np.random.default_rng(0)
    track = FaceTrack(landmarks68=rng.uniform(0, size, (frames, 68, 2)).astype(np.float32),
                      parsing=rng.integers(0, 11, (frames, size, size)).astype(np.uint8),
                      boxes=np.zeros((frames, 4), np.float32), valid=np.ones(frames, bool),
                      confidence=np.ones(frames, np.float32), n_faces=np.ones(frames, np.int16),
                      reasons=np.zeros(frames, np.uint8), frame_hw=(size, size))
    recs = [ClipRecord(f"{i:05d}", f"{i:05d}", 0, (0,)) for i in range(clips)]
    for r in recs:
        save_face_cache(cache_path(root, r.clip_id), track, clip_id=r.clip_id, extractor_hash=manifest["extractor_hash"])
    t0 = time.perf_counter()
    assert FaceMapsExtra(root, size).check(recs) == []
    check = time.perf_counter() - t0
    t0 = time.perf_counter()
    for r in recs:
        load_face_cache(cache_path(root, r.clip_id))
    return check, time.perf_counter() - t0


def checkpoint_swap(root: Path) -> tuple[float, float, int]:
    model = FineCLIPER(ModelConfig(classes=[f"c{i}" for i in range(7)]), random_clip(), tokenizer=load_tokenizer(),
                       backbones={"clip": {"sha256": "0" * 64, "format": "openai", "file": "ViT-B-16.pt"}})
    opt = torch.optim.SGD(model.trainable_parameters(), lr=0.1, momentum=0.9)
    for p in model.trainable_parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # momentum buffers exist, as after a real epoch
    buf = io.BytesIO()
    torch.save({"optimizer": opt.state_dict()}, buf)
    state = buf.getvalue()
    factory.save(model, root / "last", extra_files={"state.pt": state}, keep=root / "previous")  # warm the page cache
    t0 = time.perf_counter()
    factory.save(model, root / "last", extra_files={"state.pt": state}, keep=root / "previous")
    swap = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.save({"model": factory.tunable_state_dict(model), "optimizer": opt.state_dict()}, root / "plain.pt")
    plain = time.perf_counter() - t0
    return swap, plain, sum(f.stat().st_size for f in (root / "last").iterdir())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112, help="parsing-map side stored in the cache")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        check, load = face_cache_check(Path(tmp) / "faces", args.clips, args.frames, args.size)
        print(f"face-cache check: {args.clips / check:.0f} clips/s ({1000 * check / args.clips:.2f} ms/clip); "
              f"full load {args.clips / load:.0f} clips/s; the check costs {check / load:.1%} of one full pass")
        swap, plain, size = checkpoint_swap(Path(tmp))
        print(f"checkpoint swap (last/ + previous/, fsync): {swap:.2f} s for {size / 2**20:.0f} MiB; "
              f"plain torch.save {plain:.2f} s; ratio {swap / plain:.2f}")


if __name__ == "__main__":
    main()
