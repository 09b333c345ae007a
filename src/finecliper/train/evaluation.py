"""Running a model over a loader and scoring its predictions (UAR, WAR, confusion matrix)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterable

import numpy as np
import torch

from finecliper.eval.metrics import evaluate_predictions
from finecliper.train.distributed import Dist, gather_objects


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def autocast(device: torch.device, precision: str):
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(model, loader: Iterable, device: torch.device, precision: str = "auto", d: Dist = Dist(),
            progress=None) -> dict[str, Any]:
    """Predictions for every clip of ``loader`` (gathered over ranks, in dataset order when sharded by rank)."""
    model.eval()
    rows: list[tuple] = []
    for batch in loader:
        labels = batch["label"]
        batch = to_device({k: v for k, v in batch.items() if k != "label"}, device)
        with autocast(device, precision):
            out = model(batch)
        probs = torch.softmax(out.logits.float(), dim=-1).cpu()
        mod_pred = {m: s.argmax(-1).cpu() for m, s in out.scores.items()}
        w = out.weights.float().cpu()
        for i, cid in enumerate(batch["clip_id"]):
            rows.append((cid, int(labels[i]), probs[i].numpy(), {m: int(p[i]) for m, p in mod_pred.items()}, w[i].numpy()))
        if progress is not None:
            progress()
    rows = [r for part in gather_objects(d, rows) for r in part]
    return {
        "clip_ids": [r[0] for r in rows],
        "labels": np.array([r[1] for r in rows], dtype=np.int64),
        "probs": np.stack([r[2] for r in rows]) if rows else np.zeros((0, 0)),
        "preds": np.array([int(np.argmax(r[2])) for r in rows], dtype=np.int64),
        "modality_preds": {m: np.array([r[3][m] for r in rows]) for m in (rows[0][3] if rows else {})},
        "weights": np.stack([r[4] for r in rows]) if rows else np.zeros((0, 0)),
        "modalities": list(getattr(model, "modalities", ())),
    }


def score_predictions(pred: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Scores of the fused prediction plus each modality's own accuracy (for the log)."""
    s = evaluate_predictions(pred["labels"], pred["preds"], num_classes)
    s["modality_war"] = {m: float((p == pred["labels"]).mean()) if len(p) else 0.0 for m, p in pred["modality_preds"].items()}
    if len(pred["weights"]):
        s["mean_weights"] = dict(zip(pred["modalities"], pred["weights"].mean(0).round(4).tolist()))
    return s


def evaluate_checkpoint(cfg, checkpoint, fold: int, out_dir, clip=None, longclip=None,
                        zero_shot: bool = False) -> dict[str, Any]:
    """Score a saved model on the test split of ``cfg.data`` (fold ``fold``) and write its report.

    ``zero_shot``: score with PN prompts of the *target* dataset's classes (cross-dataset evaluation).
    """
    from pathlib import Path

    from torch.utils.data import DataLoader

    from finecliper.data.dataset import build_datasets, collate_clips
    from finecliper.data.labels import classes as dataset_classes
    from finecliper.model.build import prompt_tokens
    from finecliper.eval.report import write_fold_report
    from finecliper.io import write_json
    from finecliper.model.checkpoint import load_checkpoint
    from finecliper.train.distributed import resolve_device
    from finecliper.train.loop import make_extras

    out_dir = Path(out_dir)
    device = resolve_device(cfg.train.device, Dist())
    model = load_checkpoint(checkpoint, clip=clip, longclip=longclip).to(device)
    target = dataset_classes(cfg.data.dataset)
    if list(model.cfg.classes) != target:
        if not (zero_shot or model.cfg.zero_shot):
            raise ValueError(f"{checkpoint} was trained on classes {model.cfg.classes}, but {cfg.data.dataset} has {target}; "
                             f"pass --zero-shot to score with PN prompts of the target classes")
        model.set_prompt_tokens(*prompt_tokens(model.cfg, model.tokenize, target))
        model.cfg.classes = target
    cfg.model = model.cfg
    cfg.data.fold = fold
    _, test_ds = build_datasets(cfg.data, *make_extras(cfg, model, training=False))
    loader = DataLoader(test_ds, batch_size=cfg.data.batch_size, num_workers=cfg.data.workers, collate_fn=collate_clips)
    pred = predict(model, loader, device, cfg.train.precision)
    s = score_predictions(pred, len(model.cfg.classes))
    write_fold_report(out_dir, "test", np.array(s["confusion"]), cfg.data.dataset,
                      extra={"checkpoint": str(checkpoint), "fold": fold, "zero_shot": bool(zero_shot or model.cfg.zero_shot)})
    write_json(out_dir / "predictions.json", {"scores": s, "clip_ids": pred["clip_ids"], "labels": pred["labels"].tolist(),
                                               "preds": pred["preds"].tolist(), "probs": np.round(pred["probs"], 5).tolist()})
    return {"fold": fold, **s}
