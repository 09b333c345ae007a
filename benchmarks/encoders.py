"""Forward and forward+backward time per clip for each FineCLIPER variant at the ViT-B/16 shape.

    python benchmarks/encoders.py --batch-size 1 [--frames 16] [--variants base,star] [--device cuda]

Weights are random (timing does not depend on them). For each variant it prints seconds per clip for
our implementation (SDPA attention) and for a plain eager implementation of the same math (transformers'
eager attention) timed in the same run, their ratio, and the achieved FLOP/s (FLOPs counted by
torch.utils.flop_counter) against a square matmul of similar size timed in the same run.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from finecliper.clip.tokenizer import load_tokenizer
from finecliper.model.factory import set_attention
from finecliper.model.config import VARIANTS, ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.shapes import clip_config, random_clip


def make_model(variant: str, frames: int, device, attn: str) -> FineCLIPER:
    clip = random_clip(clip_config())
    longclip = random_clip(clip_config(context_length=248, vision_layers=1)) if "description" in VARIANTS[variant] else None
    for m in (clip, longclip):
        if m is not None:
            set_attention(m, attn)
    cfg = ModelConfig(variant=variant, classes=["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"],
                      num_frames=frames, drop_path=0.0)
    return FineCLIPER(cfg, clip, longclip, tokenizer=load_tokenizer()).to(device)


def make_batch(model: FineCLIPER, b: int, frames: int, device) -> dict:
    x = {"frames": torch.randn(b, frames, 3, 224, 224, device=device), "label": torch.zeros(b, dtype=torch.long, device=device)}
    if "parsing" in model.modalities:
        x["parsing_maps"] = torch.randn_like(x["frames"])
        x["landmark_maps"] = torch.randn_like(x["frames"])
    if "description" in model.modalities:
        t = torch.zeros(b, 248, dtype=torch.long, device=device)
        t[:, 0], t[:, 1:35], t[:, 35] = 49406, 320, 49407  # ~35-token descriptions, as in the paper
        x["description_tokens"] = t
    return x


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def matmul_flops_per_s(device, n: int = 4096, repeats: int = 3) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / timed(lambda: a @ b, device, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    peak = matmul_flops_per_s(device)
    print(f"device {device} ({torch.cuda.get_device_name(0) if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}), "
          f"ViT-B/16, {args.frames} frames, batch {args.batch_size}, fp32; matmul 4096^3: {peak / 1e9:.1f} GFLOP/s")
    print(f"{'variant':<12} {'pass':<9} {'ours s/clip':>11} {'eager s/clip':>12} {'speed-up':>8} {'GFLOP/clip':>10} {'GFLOP/s':>8} {'of matmul':>9}")
    for variant in args.variants.split(","):
        res = {}
        for attn in ("sdpa", "eager"):
            torch.manual_seed(0)
            model = make_model(variant, args.frames, device, attn).train()
            batch = make_batch(model, args.batch_size, args.frames, device)

            def fwd():
                with torch.no_grad():
                    model(batch)

            def fwd_bwd():
                model(batch).loss.backward()
                model.zero_grad(set_to_none=True)

            res[attn] = {"forward": timed(fwd, device, args.repeats), "forward+backward": timed(fwd_bwd, device, args.repeats)}
            if attn == "sdpa":
                res["flops"] = {"forward": count_flops(fwd), "forward+backward": count_flops(fwd_bwd)}
            model = batch = None  # free the towers before the next build
        for p in ("forward", "forward+backward"):
            ours, eager, fl = res["sdpa"][p], res["eager"][p], res["flops"][p]
            rate = fl / ours
            print(f"{variant:<12} {p:<9} {ours / args.batch_size:>11.3f} {eager / args.batch_size:>12.3f} {eager / ours:>7.2f}x "
                  f"{fl / 1e9 / args.batch_size:>10.1f} {rate / 1e9:>8.1f} {rate / peak:>8.0%}")


if __name__ == "__main__":
    main()
