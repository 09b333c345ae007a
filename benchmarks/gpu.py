"""The paper's recipe on one GPU, measured: bf16 step time, MFU, memory, compile, a 100-step run, Video-LLaVA.

    python benchmarks/gpu.py                  # on a CUDA machine; one run of at most --budget-s seconds
    python benchmarks/gpu.py --tiny           # the same sections with tiny shapes on the CPU (a CI test)

Sections, each printed as it finishes and written to ``--out`` (JSON, rewritten after every section,
so a run stopped by its time limit still leaves what it measured):

1. ``peak``: bf16 and fp32 matmul throughput measured in this run (the MFU reference);
2. ``steps``: for each variant (base, *, †, *†) at the real ViT-B/16 + Long-CLIP shapes with random
   weights, 16 frames, batch 8, 16, 32 and 48 (DFER-CLIP's), gradient checkpointing off and on: one
   bf16-autocast training step (forward, backward, SGD step): seconds, clips/s, counted FLOPs
   (``torch.utils.flop_counter``), MFU against the measured bf16 peak, peak memory;
3. ``fits_24gb``: per variant the largest batch whose step runs with the allocator capped at 24 GiB
   (``torch.cuda.set_per_process_memory_fraction``), predicted from the measured memory line, then run;
4. ``train``: 100 steps of the base variant on generated, learnable clips at full size in bf16, with
   the recipe's SGD and warm-up + cosine schedule: loss finite and decreasing, weights finite;
5. ``video_llava``: Video-LLaVA at its real 7B shape, random bf16 weights built directly on the device
   (no fp32 copy), batched greedy generation of 64 new tokens from 8 frames at batch 1, 8 and 32;
6. ``projection``: one DFEW fold epoch (9,356 training + 2,341 test clips) and the 30-epoch recipe per
   variant at the recommended 24 GB batch;
7. ``compile``: ``torch.compile`` on vs off for the base variant (steady-state speed-up, compile time,
   graph breaks), last because its compile time is the hardest to predict.

Sections that would not finish inside the budget are skipped and say so. Weights are random: timing
does not depend on them.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from finecliper.clip.tokenizer import load_tokenizer
from finecliper.data.labels import classes as dataset_classes
from finecliper.device import autocast
from finecliper.io import write_json
from finecliper.model.config import VARIANTS, ModelConfig
from finecliper.model.factory import set_attention
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.shapes import clip_config, random_clip
from finecliper.train.config import TrainConfig
from finecliper.train.loop import make_optimizer, make_schedule, train_one_epoch

GiB = 1 << 30
CARD_GIB = 24  # the paper's RTX 4090
DFEW_FOLD = {"train": 9356, "test": 2341}  # DFEW fold 1 (official split files)
RECIPE_EPOCHS = 30
CLASSES = dataset_classes("dfew")
NUM_CLASSES = len(CLASSES)


@dataclass(frozen=True)
class Shapes:
    """Model and run sizes: the paper's (``full``) or a CPU smoke run (``tiny``)."""
    clip: dict
    longclip: dict
    frames: int
    image: int
    batches: tuple[int, ...]
    matmul_n: int
    repeats: int
    train_steps: int
    train_batch: int
    compile_batch: int
    llava: dict
    llava_frames: int
    llava_batches: tuple[int, ...]
    new_tokens: int = 64
    desc_tokens: int = 35  # the paper's refined descriptions average ~35 tokens
    compile_backend: str = "inductor"
    reserve_s: float = 1.0  # scales the seconds a section must have left to start (0: never skip)

    @classmethod
    def full(cls) -> "Shapes":
        return cls(clip={}, longclip=dict(context_length=248, vision_layers=1), frames=16, image=224,
                   batches=(8, 16, 32, 48), matmul_n=8192, repeats=3, train_steps=100, train_batch=8,
                   compile_batch=32, llava=VIDEO_LLAVA_7B, llava_frames=8, llava_batches=(1, 8, 32))

    @classmethod
    def tiny(cls) -> "Shapes":
        small = dict(vision_width=64, vision_layers=2, patch_size=16, image_size=32, text_width=64, text_layers=2,
                     embed_dim=32)
        return cls(clip=small, longclip={**small, "context_length": 248, "vision_layers": 1}, frames=4, image=32,
                   batches=(1, 2), matmul_n=256, repeats=1, train_steps=12, train_batch=4, compile_batch=2,
                   llava=VIDEO_LLAVA_TINY, llava_frames=2, llava_batches=(1, 2), new_tokens=4, desc_tokens=8,
                   compile_backend="aot_eager", reserve_s=0.0)  # aot_eager: the graph capture without a C++ build


# Video-LLaVA-7B-hf: LanguageBind video tower (CLIP ViT-L/14 shape) + Vicuna-7B (Llama) + 2-layer projector.
VIDEO_LLAVA_7B = dict(
    vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                image_size=224, patch_size=14, projection_dim=768),
    text=dict(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
              num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096),
    image_token_index=32000, video_token_index=32001)
VIDEO_LLAVA_TINY = dict(
    vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=28,
                patch_size=14, projection_dim=32),
    text=dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
              num_key_value_heads=2, max_position_embeddings=1024),
    image_token_index=500, video_token_index=501)


@dataclass
class Run:
    """Device, shapes, the frozen towers and the time budget shared by every section."""
    device: torch.device
    shapes: Shapes
    budget_s: float
    out: Path
    results: dict = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)
    towers: dict = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def has_time(self, seconds: float) -> bool:
        """Enough budget left to start something that takes about ``seconds`` at full size."""
        return self.left() >= seconds * self.shapes.reserve_s

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def autocast(self):
        # precision "auto": bf16 on GPU (the recipe); on this project's CPUs bf16 is 6-8x slower than fp32
        # (environment notes), so the --tiny smoke run keeps fp32 and only exercises the code paths.
        return autocast(self.device, "auto")

    def save(self, section: str, value: Any) -> None:
        self.results[section] = value
        write_json(self.out, self.results)


# ----------------------------------------------------------------------------- measuring

def timed(fn: Callable[[], Any], run: Run, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    run.sync()
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        run.sync()
        best = min(best, time.perf_counter() - t)
    return best


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def matmul_peak(run: Run, dtype: torch.dtype, n: int, repeats: int) -> float:
    """FLOP/s of an n x n x n matmul in ``dtype`` (the roof the MFU figures are measured against)."""
    a = torch.randn(n, n, device=run.device, dtype=dtype)
    b = torch.randn(n, n, device=run.device, dtype=dtype)
    return 2 * n ** 3 / timed(lambda: a @ b, run, max(repeats, 3))


def reset_memory(run: Run) -> None:
    if run.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(run.device)


def peak_memory_gib(run: Run) -> float | None:
    return torch.cuda.max_memory_allocated(run.device) / GiB if run.cuda else None


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


# ----------------------------------------------------------------------------- FineCLIPER

def towers(run: Run, long: bool):
    """The frozen CLIP (or Long-CLIP) tower, random, built once on the device and shared by every variant."""
    key = "longclip" if long else "clip"
    if key not in run.towers:
        shape = run.shapes.longclip if long else run.shapes.clip
        run.towers[key] = random_clip(clip_config(**shape), device=run.device)
        set_attention(run.towers[key], "sdpa")
    return run.towers[key]


def build_model(variant: str, run: Run, grad_checkpoint: bool = False) -> FineCLIPER:
    """A variant on the shared random towers (DFEW's 7 class prompts), on the device, in training mode."""
    longclip = towers(run, long=True) if "description" in VARIANTS[variant] else None
    cfg = ModelConfig(variant=variant, classes=list(CLASSES), num_frames=run.shapes.frames,
                      grad_checkpoint=grad_checkpoint)
    tokenizer = load_tokenizer()
    return FineCLIPER(cfg, towers(run, long=False), longclip, tokenizer=tokenizer,
                      longclip_tokenizer=load_tokenizer(context_length=248) if longclip is not None else None
                      ).to(run.device).train()


def random_batch(model: FineCLIPER, b: int, shapes: Shapes, run: Run, labels: torch.Tensor | None = None) -> dict:
    t, s = shapes.frames, shapes.image
    batch = {"frames": torch.randn(b, t, 3, s, s, device=run.device),
             "label": labels if labels is not None else torch.randint(0, NUM_CLASSES, (b,), device=run.device)}
    if "parsing" in model.modalities:
        batch["parsing_maps"] = torch.randn_like(batch["frames"])
        batch["landmark_maps"] = torch.randn_like(batch["frames"])
    if "description" in model.modalities:
        tokens = torch.zeros(b, shapes.desc_tokens + 2, dtype=torch.long, device=run.device)
        tokens[:, 0], tokens[:, 1:-1], tokens[:, -1] = 49406, 320, 49407
        batch["description_tokens"] = tokens
    return batch


def sgd(model: FineCLIPER) -> torch.optim.Optimizer:
    """The recipe's optimiser (TrainConfig defaults: SGD, lr 1e-3, momentum 0.9, weight decay 1e-4)."""
    return make_optimizer(model, TrainConfig())


def step_fn(model, opt, batch: dict, run: Run) -> Callable[[], float]:
    def step() -> float:
        with run.autocast():
            loss = model(batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def measure_step(model, b: int, shapes: Shapes, run: Run, peak_bf16: float) -> dict:
    """One configuration: seconds, clips/s, FLOPs, MFU and peak memory of a training step at batch ``b``."""
    opt = sgd(model)
    batch = random_batch(model, b, shapes, run)
    step = step_fn(model, opt, batch, run)
    try:
        reset_memory(run)
        seconds = timed(step, run, shapes.repeats)
        memory = peak_memory_gib(run)
        flops = count_flops(step)
    except RuntimeError as e:
        if not is_oom(e):
            raise
        return {"batch": b, "oom": True}
    finally:
        del opt, batch
        reset_memory(run)
    return {"batch": b, "seconds": round(seconds, 4), "clips_per_s": round(b / seconds, 2),
            "flop": flops, "tflop": round(flops / 1e12, 3), "mfu": round(flops / seconds / peak_bf16, 6),
            "peak_memory_gib": None if memory is None else round(memory, 2)}


def measure_eval(model, b: int, shapes: Shapes, run: Run) -> float:
    """Clips/s of the test-time forward (no gradient) at batch ``b``."""
    batch = random_batch(model, b, shapes, run)
    model.eval()
    try:
        with torch.no_grad(), run.autocast():
            seconds = timed(lambda: model(batch), run, shapes.repeats)
    finally:
        model.train()
    return b / seconds


def section_steps(run: Run, shapes: Shapes, peak_bf16: float) -> dict:
    rows: dict[str, list] = {}
    for variant in VARIANTS:
        for ckpt in (False, True):
            model = build_model(variant, run, grad_checkpoint=ckpt)
            for b in shapes.batches:
                if not run.has_time(60):
                    rows.setdefault(variant, []).append({"batch": b, "grad_checkpoint": ckpt, "skipped": "budget"})
                    continue
                r = {"grad_checkpoint": ckpt, **measure_step(model, b, shapes, run, peak_bf16)}
                rows.setdefault(variant, []).append(r)
                print(f"  {variant:<12} ckpt {'on ' if ckpt else 'off'} batch {b:>3}: " + (
                    "out of memory" if r.get("oom") else
                    f"{r['seconds']:.3f} s/step  {r['clips_per_s']:.1f} clips/s  {r['tflop']:.2f} TFLOP  "
                    f"MFU {100 * r['mfu']:.1f} %  peak {r['peak_memory_gib']} GiB"))
            del model
            reset_memory(run)
        run.save("steps", rows)
    return rows


# ----------------------------------------------------------------------------- fits 24 GB

def largest_batch_predicted(rows: list[dict], limit_gib: float) -> int | None:
    """Batch at which the measured peak-memory line (fit through the measured batches) reaches the limit."""
    pts = [(r["batch"], r["peak_memory_gib"]) for r in rows if r.get("peak_memory_gib")]
    if len(pts) < 2:
        return None
    (b0, m0), (b1, m1) = pts[0], pts[-1]
    slope = (m1 - m0) / (b1 - b0)
    return max(0, int((limit_gib - m0) / slope + b0)) if slope > 0 else None


def runs_capped(model, b: int, shapes: Shapes, run: Run) -> bool:
    """Does one training step at batch ``b`` run with the allocator capped at the card's memory?"""
    total = torch.cuda.get_device_properties(run.device).total_memory
    reset_memory(run)
    torch.cuda.set_per_process_memory_fraction(min(1.0, CARD_GIB * GiB / total), run.device)
    try:
        step_fn(model, sgd(model), random_batch(model, b, shapes, run), run)()
        run.sync()
        return True
    except RuntimeError as e:
        if not is_oom(e):
            raise
        return False
    finally:
        model.zero_grad(set_to_none=True)
        torch.cuda.set_per_process_memory_fraction(1.0, run.device)
        reset_memory(run)


def section_fits(run: Run, shapes: Shapes, steps: dict) -> dict:
    """Largest batch per variant and checkpointing setting that runs in 24 GiB (CUDA only).

    The frozen towers count too: a 24 GB card holds them as well as the activations.
    """
    if not run.cuda:
        print("  skipped: needs CUDA (the cap is the CUDA allocator's)")
        return {"skipped": "needs CUDA (the cap is the CUDA allocator's)"}
    out = {}
    for variant, rows in steps.items():
        for ckpt in (False, True):
            mine = [r for r in rows if r.get("grad_checkpoint") == ckpt]
            guess = largest_batch_predicted(mine, CARD_GIB * 0.97)
            if guess is None or not run.has_time(30):
                continue
            model = build_model(variant, run, grad_checkpoint=ckpt)
            b, tries = max(1, guess), 0
            while b > 0 and tries < 4 and not runs_capped(model, b, shapes, run):
                b, tries = int(b * 0.9), tries + 1
            del model
            out[f"{variant}/ckpt_{'on' if ckpt else 'off'}"] = {"predicted": guess, "largest_verified": b}
            print(f"  {variant:<12} ckpt {'on ' if ckpt else 'off'}: largest batch in {CARD_GIB} GiB = {b} "
                  f"(predicted {guess})")
        run.save("fits_24gb", out)
    return out


# ----------------------------------------------------------------------------- compile

def section_compile(run: Run, shapes: Shapes) -> dict:
    """Base variant, eager vs ``torch.compile``: steady-state step time and the compile time."""
    if not run.has_time(150):
        return {"skipped": "budget"}
    b = shapes.compile_batch
    model = build_model("base", run)
    batch = random_batch(model, b, shapes, run)
    eager = timed(step_fn(model, sgd(model), batch, run), run, shapes.repeats)
    torch._dynamo.reset()
    torch._logging.set_logs(dynamo=logging.ERROR)  # graph breaks are counted below, not printed
    step = step_fn(torch.compile(model, backend=shapes.compile_backend), sgd(model), batch, run)
    t = time.perf_counter()
    try:
        step()
        run.sync()
    except Exception as e:  # a compiler failure is a finding to report, not a reason to lose the run
        return {"batch": b, "eager_s": round(eager, 4), "failed": f"{type(e).__name__}: {str(e)[:300]}"}
    first = time.perf_counter() - t
    steady = timed(step, run, shapes.repeats)
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    res = {"batch": b, "backend": shapes.compile_backend, "eager_s": round(eager, 4), "compiled_s": round(steady, 4),
           "speedup": round(eager / steady, 3), "compile_s": round(first - steady, 1), "graph_breaks": breaks}
    print(f"  base batch {b}: eager {eager:.3f} s, compiled ({shapes.compile_backend}) {steady:.3f} s "
          f"({res['speedup']:.2f}x), compile {res['compile_s']} s, {breaks} graph break(s)")
    return res


# ----------------------------------------------------------------------------- 100-step run

def learnable_batch(b: int, shapes: Shapes, gen: torch.Generator) -> dict:
    """Clips whose colour says their class (plus noise), on the CPU as a loader yields them."""
    labels = torch.randint(0, NUM_CLASSES, (b,), generator=gen)
    palette = torch.linspace(-1.5, 1.5, NUM_CLASSES)
    frames = torch.randn(b, shapes.frames, 3, shapes.image, shapes.image, generator=gen) * 0.5
    frames[:, :, 0] += palette[labels][:, None, None, None]
    frames[:, :, 2] -= palette[labels][:, None, None, None]
    return {"frames": frames, "label": labels, "clip_id": [f"clip{i}" for i in range(b)]}


def section_train(run: Run, shapes: Shapes) -> dict:
    """``train_steps`` optimiser steps of the base variant through the training loop's own pieces
    (``make_optimizer``, ``make_schedule``: SGD, warm-up + cosine; ``train_one_epoch``: autocast, backward)."""
    if not run.has_time(60):
        return {"skipped": "budget"}
    torch.manual_seed(0)
    model = build_model("base", run)
    n = shapes.train_steps
    tc = TrainConfig(epochs=1, lr=1e-2, warmup_epochs=0.1, precision="bf16" if run.cuda else "fp32")
    opt = make_optimizer(model, tc)
    sched = make_schedule(opt, tc, steps=n)
    gen = torch.Generator().manual_seed(0)
    batches = (learnable_batch(shapes.train_batch, shapes, gen) for _ in range(n))
    losses: list[float] = []
    t = time.perf_counter()
    train_one_epoch(model, batches, opt, sched, n, 1, run.device, tc.precision,
                    on_batch=lambda i, loss, lr: losses.append(loss))
    run.sync()
    k = max(1, n // 10)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    finite_w = all(bool(torch.isfinite(p).all()) for p in model.trainable_parameters())
    res = {"steps": n, "batch": shapes.train_batch, "seconds": round(time.perf_counter() - t, 2),
           "loss_first": round(first, 4), "loss_last": round(last, 4),
           "loss_finite": all(math.isfinite(x) for x in losses), "weights_finite": finite_w,
           "decreasing": last < first, "losses": [round(x, 4) for x in losses]}
    print(f"  {n} steps, batch {shapes.train_batch}: loss {first:.3f} -> {last:.3f} "
          f"(finite {res['loss_finite']}, weights finite {finite_w}) in {res['seconds']} s")
    return res


# ----------------------------------------------------------------------------- Video-LLaVA

def build_video_llava(spec: dict, run: Run):
    """Random weights in the run's dtype, allocated on the device directly (no fp32 copy is made)."""
    from transformers import CLIPVisionConfig, LlamaConfig, VideoLlavaConfig, VideoLlavaForConditionalGeneration

    cfg = VideoLlavaConfig(vision_config=CLIPVisionConfig(**spec["vision"]), text_config=LlamaConfig(**spec["text"]),
                           image_token_index=spec["image_token_index"], video_token_index=spec["video_token_index"])
    dtype = torch.bfloat16 if run.cuda else torch.float32
    with torch.device(run.device):
        model = VideoLlavaForConditionalGeneration._from_config(cfg, dtype=dtype)
    return model.eval(), cfg, dtype


def llava_inputs(cfg, b: int, frames: int, run: Run, dtype) -> dict:
    """Left-aligned prompt ids with the video placeholder expanded (as the video-llava backend builds them)."""
    vc = cfg.vision_config
    n_video = frames * ((vc.image_size // vc.patch_size) ** 2 + 1)  # video features keep the CLS token
    prompt = [1] + [306] * 12 + [cfg.video_token_index] * n_video + [306] * 60  # ~ the analyst prompt's length
    ids = torch.tensor([prompt] * b, device=run.device)
    pixels = torch.randn(b, frames, 3, vc.image_size, vc.image_size, device=run.device, dtype=dtype)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values_videos": pixels}


def section_video_llava(run: Run, shapes: Shapes) -> dict:
    if not run.has_time(90):
        return {"skipped": "budget"}
    model, cfg, dtype = build_video_llava(shapes.llava, run)
    params = sum(p.numel() for p in model.parameters())
    res: dict[str, Any] = {"parameters": params, "dtype": str(dtype).replace("torch.", ""), "frames": shapes.llava_frames,
                           "new_tokens": shapes.new_tokens, "batches": {}}
    for b in shapes.llava_batches:
        if not run.has_time(20):
            res["batches"][str(b)] = {"skipped": "budget"}
            continue
        x = llava_inputs(cfg, b, shapes.llava_frames, run, dtype)

        @torch.inference_mode()
        def generate():
            return model.generate(**x, max_new_tokens=shapes.new_tokens, min_new_tokens=shapes.new_tokens,
                                  do_sample=False, num_beams=1, pad_token_id=0)
        try:
            reset_memory(run)
            seconds = timed(generate, run, 1)
        except RuntimeError as e:
            if not is_oom(e):
                raise
            res["batches"][str(b)] = {"oom": True}
            continue
        res["batches"][str(b)] = {"seconds": round(seconds, 3), "clips_per_s": round(b / seconds, 3),
                             "peak_memory_gib": None if not run.cuda else round(peak_memory_gib(run), 2)}
        print(f"  batch {b:>3}: {seconds:.2f} s for {shapes.new_tokens} new tokens -> {b / seconds:.2f} clips/s")
    del model
    reset_memory(run)
    return res


# ----------------------------------------------------------------------------- projections

def recommended_batch(rows: list[dict], fits: dict, variant: str) -> tuple[int, bool] | None:
    """The largest measured batch that fits 24 GiB, preferring no checkpointing (it costs a forward)."""
    for ckpt in (False, True):
        verified = fits.get(f"{variant}/ckpt_{'on' if ckpt else 'off'}", {}).get("largest_verified")
        ok = [r for r in rows if r.get("grad_checkpoint") == ckpt and "seconds" in r
              and (verified is None or r["batch"] <= verified)]
        if ok and (verified is not None or not fits):
            best = max(ok, key=lambda r: r["batch"])
            return best["batch"], ckpt
    return None


def section_projection(run: Run, shapes: Shapes, steps: dict, fits: dict) -> dict:
    out = {}
    for variant, rows in steps.items():
        pick = recommended_batch(rows, fits if run.cuda else {}, variant)
        if pick is None or not run.has_time(30):
            continue
        b, ckpt = pick
        row = next(r for r in rows if r["batch"] == b and r.get("grad_checkpoint") == ckpt)
        model = build_model(variant, run, grad_checkpoint=ckpt)
        eval_cps = measure_eval(model, b, shapes, run)
        del model
        reset_memory(run)
        epoch_s = DFEW_FOLD["train"] / row["clips_per_s"] + DFEW_FOLD["test"] / eval_cps
        out[variant] = {"batch": b, "grad_checkpoint": ckpt, "train_clips_per_s": row["clips_per_s"],
                        "eval_clips_per_s": round(eval_cps, 2), "fold_epoch_min": round(epoch_s / 60, 2),
                        "recipe_h": round(RECIPE_EPOCHS * epoch_s / 3600, 2)}
        print(f"  {variant:<12} batch {b} ckpt {'on' if ckpt else 'off'}: DFEW fold epoch {epoch_s / 60:.1f} min, "
              f"{RECIPE_EPOCHS} epochs {RECIPE_EPOCHS * epoch_s / 3600:.2f} h (data loading not included)")
    return out


# ----------------------------------------------------------------------------- main

def goals(results: dict) -> dict:
    """The issue's goals, read off the measured figures (None where a figure is missing)."""
    base = [r for r in results.get("steps", {}).get("base", []) if r.get("batch", 0) >= 32 and "mfu" in r]
    fits = results.get("fits_24gb", {})
    llava = results.get("video_llava", {}).get("batches", {}).get("32", {})
    every_fits = None
    if fits and "skipped" not in fits:
        every_fits = all(max((v["largest_verified"] for k, v in fits.items() if k.startswith(f"{variant}/")), default=0) >= 16
                         for variant in VARIANTS)
    return {"base_mfu_ge_45pct_at_batch_ge_32": max((r["mfu"] for r in base), default=None),
            "every_variant_fits_24gb_at_16": every_fits,
            "video_llava_clips_per_s_at_32": llava.get("clips_per_s")}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU: exercises every section (CI)")
    ap.add_argument("--device", default=None, help="default: cuda when available (else cpu, with --tiny only)")
    ap.add_argument("--budget-s", type=float, default=480.0, help="wall-clock budget; later sections are skipped")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/gpu_<device>_<date>.json)")
    ap.add_argument("--sections", default="peak,steps,fits,compile,train,video_llava,projection")
    args = ap.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.tiny:
        ap.error("no CUDA device: the full shapes need a GPU; use --tiny for the CPU smoke run")
    shapes = Shapes.tiny() if args.tiny else Shapes.full()
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 peak as a GPU user would get it
        torch.backends.cudnn.allow_tf32 = True
    name = device_name(device)
    today = dt.date.today().isoformat()
    out = Path(args.out or Path(__file__).parent / "results" / f"gpu_{name.replace(' ', '_').replace('/', '_')}_{today}.json")
    run = Run(device, shapes, args.budget_s, out)
    run.save("meta", {"device": name, "torch": torch.__version__, "cuda": torch.version.cuda, "date": today,
                      "tiny": args.tiny, "shapes": asdict(shapes), "budget_s": args.budget_s})
    want = set(args.sections.split(","))
    print(f"{name}, torch {torch.__version__}{' (tiny shapes)' if args.tiny else ''}; JSON: {out}")

    peak = {"bf16_tflops": None, "fp32_tflops": None}
    if "peak" in want:
        for key, dtype in (("bf16_tflops", torch.bfloat16), ("fp32_tflops", torch.float32)):
            peak[key] = round(matmul_peak(run, dtype, shapes.matmul_n, shapes.repeats) / 1e12, 3)
        print(f"[peak] matmul {shapes.matmul_n}^3: bf16 {peak['bf16_tflops']} TFLOP/s, fp32 {peak['fp32_tflops']} TFLOP/s")
        run.save("peak", peak)
    roof = (peak["bf16_tflops"] if run.cuda else peak["fp32_tflops"]) or 1.0
    steps = fits = {}
    if "steps" in want:
        print("[steps] bf16-autocast training step" if run.cuda else "[steps] training step (fp32 on CPU)")
        steps = section_steps(run, shapes, roof * 1e12)
    if "fits" in want:
        print(f"[fits_24gb] largest batch in {CARD_GIB} GiB")
        fits = section_fits(run, shapes, steps)
        run.save("fits_24gb", fits)
    for key, fn in (("train", section_train), ("video_llava", section_video_llava)):
        if key in want:
            print(f"[{key}]")
            run.save(key, fn(run, shapes))
    if "projection" in want:
        print("[projection] DFEW fold 1 and the 30-epoch recipe")
        run.save("projection", section_projection(run, shapes, steps, fits))
    if "compile" in want:  # last: its compile time is the least predictable part of the budget
        print("[compile]")
        run.save("compile", section_compile(run, shapes))
    run.save("goals", goals(run.results))
    print(f"goals: {run.results['goals']}\nwritten {out} in {time.perf_counter() - run.t0:.0f} s")
    return run.results


if __name__ == "__main__":
    main()
