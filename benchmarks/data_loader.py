"""Loader throughput: clips/s of decode + sample + augment + normalise, without any model.

    .venv/bin/python benchmarks/data_loader.py [--clips 24] [--frames 64] [--size 224] [--workers 0 2]

Synthetic clips (textured frames, JPEG folders and MPEG-4 videos) are written to a temp dir.
It then times one training step of the base variant at the ViT-B/16 shape (random weights,
``--batch-size`` clips of 16 frames) and prints the ratio loader clips/s : training clips/s — the loader
keeps the model busy when the ratio is above 1 (per worker count).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from torch.utils.data import DataLoader

from finecliper.data.dataset import ClipDataset, collate_clips
from finecliper.data.splits import ClipRecord
from finecliper.data.synthetic import write_frame_folder, write_video


def make_synthetic_clips(root: str | Path, kind: str, n_clips: int, n_frames: int, size: int) -> list[ClipRecord]:
    """n_clips frame folders (kind='folder') or .mp4 files (kind='video') of n_frames size x size frames."""
    root = Path(root)
    recs = []
    for i in range(n_clips):
        cid = f"{i:05d}"
        if kind == "folder":
            write_frame_folder(root / cid, n_frames, size, size, pattern=True)
        elif kind == "video":
            write_video(root / f"{cid}.mp4", n_frames, size, size, pattern=True)
        else:
            raise ValueError(f"kind must be 'folder' or 'video', got {kind!r}")
        recs.append(ClipRecord(cid, cid, i % 7, (i % 7,)))
    return recs


def loader_clips_per_second(data_root: str | Path, records: list[ClipRecord], *, train: bool = True,
                            num_frames: int = 16, image_size: int = 224, augment: str = "dfew",
                            batch_size: int = 8, num_workers: int = 0, epochs: int = 1) -> float:
    """Clips per second through a DataLoader over ``records`` (the first batch is a warm-up)."""
    ds = ClipDataset(records, data_root, train=train, num_frames=num_frames, image_size=image_size,
                     augment=augment if train else "none")
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_clips,
                        persistent_workers=num_workers > 0)
    n, t0 = 0, None
    for epoch in range(epochs + 1):  # epoch 0 = warm-up (worker start, page cache)
        ds.set_epoch(epoch)
        if epoch == 1:
            t0 = time.perf_counter()
        for batch in loader:
            if epoch >= 1:
                n += batch["frames"].shape[0]
    return n / (time.perf_counter() - t0)


def training_clips_per_second(batch_size: int, repeats: int = 2) -> float:
    """Clips/s of forward+backward+SGD step of the base variant at the ViT-B/16 shape (random weights)."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from encoders import make_batch, make_model  # same model and batch as benchmarks/encoders.py

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = make_model("base", 16, device, "sdpa").train()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=1e-3, momentum=0.9)
    batch = make_batch(model, batch_size, 16, device)

    def step():
        model(batch).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()
    best = min(_timed(step) for _ in range(repeats))
    return batch_size / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--size", type=int, default=224, help="source frame size")
    ap.add_argument("--out-size", type=int, default=224)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batch-size", type=int, default=1, help="clips per training step (ViT-B/16, 16 frames)")
    ap.add_argument("--skip-model", action="store_true", help="loader only")
    args = ap.parse_args()
    step_cps = None if args.skip_model else training_clips_per_second(args.batch_size)
    if step_cps:
        print(f"training step (base variant, ViT-B/16, 16 frames, batch {args.batch_size}): {step_cps:.3f} clips/s")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{args.clips} clips x {args.frames} frames of {args.size}x{args.size} -> 16 x {args.out_size}^2")
        print(f"{'source':8s} {'mode':6s} {'workers':>7s} {'clips/s':>8s}")
        for kind in ("folder", "video"):
            root = Path(tmp) / kind
            recs = make_synthetic_clips(root, kind, args.clips, args.frames, args.size)
            for train in (True, False):
                for w in args.workers:
                    cps = loader_clips_per_second(root, recs, train=train, image_size=args.out_size, num_workers=w)
                    ratio = f"  loader/step {cps / step_cps:8.1f}x" if step_cps and train else ""
                    print(f"{kind:8s} {'train' if train else 'eval':6s} {w:7d} {cps:8.1f}{ratio}", flush=True)


if __name__ == "__main__":
    main()
