"""Running a model over a test split and scoring its predictions (UAR, WAR, confusion matrix)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from finecliper.data.dataset import build_datasets
from finecliper.data.labels import classes as dataset_classes
from finecliper.device import autocast, resolve_device, to_device
from finecliper.eval.metrics import evaluate_predictions
from finecliper.eval.report import class_similarity, write_class_similarity, write_fold_report
from finecliper.io import write_json
from finecliper.model.finecliper import FineCLIPER
from finecliper.train.config import ExperimentConfig
from finecliper.train.distributed import Dist, gather_in_order, shard_loader
from finecliper.train.inputs import check_datasets, make_inputs


class EvaluationError(ValueError):
    pass


@torch.no_grad()
def predict(model, loader: DataLoader, device: torch.device, precision: str = "auto", d: Dist = Dist(),
            progress: Callable[[], None] | None = None, keep_features: bool = False) -> dict[str, Any]:
    """Predictions for every clip of ``loader``'s dataset, gathered over ranks, in dataset order, each once.
    ``keep_features``: also each clip's video feature (for Fig. 5; not needed by the per-epoch evaluation)."""
    model.eval()
    rows: list[tuple] = []
    for batch in loader:
        labels = batch["label"]
        with autocast(device, precision):
            out = model(to_device({k: v for k, v in batch.items() if k != "label"}, device))
        probs = torch.softmax(out.logits.float(), dim=-1).cpu()
        mod_pred = {m: s.argmax(-1).cpu() for m, s in out.scores.items()}
        w = out.weights.float().cpu()
        video = out.modality_features.get("video") if keep_features else None  # (B, E) normalised, for Fig. 5
        video = None if video is None else video.float().cpu()
        for i, cid in enumerate(batch["clip_id"]):
            rows.append((cid, int(labels[i]), probs[i].numpy(), {m: int(p[i]) for m, p in mod_pred.items()}, w[i].numpy(),
                         None if video is None else video[i].numpy()))
        if progress is not None:
            progress()
    rows = gather_in_order(d, rows, len(loader.dataset))
    return {
        "clip_ids": [r[0] for r in rows],
        "labels": np.array([r[1] for r in rows], dtype=np.int64),
        "probs": np.stack([r[2] for r in rows]) if rows else np.zeros((0, 0)),
        "preds": np.array([int(np.argmax(r[2])) for r in rows], dtype=np.int64),
        "modality_preds": {m: np.array([r[3][m] for r in rows]) for m in (rows[0][3] if rows else {})},
        "weights": np.stack([r[4] for r in rows]) if rows else np.zeros((0, 0)),
        "modalities": list(getattr(model, "modalities", ())),
        "video_features": np.stack([r[5] for r in rows]) if rows and rows[0][5] is not None else None,
    }


def score_predictions(pred: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Scores of the fused prediction plus each modality's own accuracy (for the log)."""
    s = evaluate_predictions(pred["labels"], pred["preds"], num_classes)
    s["modality_war"] = {m: float((p == pred["labels"]).mean()) if len(p) else 0.0 for m, p in pred["modality_preds"].items()}
    if len(pred["weights"]):
        s["mean_weights"] = dict(zip(pred["modalities"], pred["weights"].mean(0).round(4).tolist()))
    return s


def evaluate(model, loader: DataLoader, device: torch.device, precision: str, d: Dist = Dist(),
             progress: Callable[[], None] | None = None, keep_features: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(predictions, scores) of ``model`` on ``loader``'s dataset, scored against the model's current classes."""
    pred = predict(model, loader, device, precision, d, progress, keep_features)
    return pred, score_predictions(pred, len(model.classes))


def write_class_similarity_report(out_stem: Path, model: FineCLIPER, pred: dict[str, Any], title: str = "") -> list[Path]:
    """Fig. 5: per class, the mean cosine similarity of the clips' video features to that class's positive and
    negative prompt (``<stem>.csv``, ``<stem>.png``). Nothing for a model without the video modality or without
    prompts (``text_supervision=none``)."""
    if pred.get("video_features") is None or model.cfg.text_supervision == "none":
        return []
    with torch.no_grad():
        tp, tn = model.eval().class_text_features()
    sim = class_similarity(pred["video_features"], pred["labels"], tp.float().cpu().numpy(),
                           None if tn is None else tn.float().cpu().numpy())
    return list(write_class_similarity(out_stem, sim, model.classes, title))


def write_predictions(path: Path, pred: dict[str, Any], scores: dict[str, Any]) -> None:
    write_json(path, {"scores": scores, "clip_ids": pred["clip_ids"], "labels": pred["labels"].tolist(),
                      "preds": pred["preds"].tolist(), "probs": np.round(pred["probs"], 5).tolist()})


def evaluate_checkpoint(cfg: ExperimentConfig, checkpoint: str | Path, fold: int, out_dir: str | Path, clip=None,
                        longclip=None, zero_shot: bool = False) -> dict[str, Any]:
    """Score a saved model (folder or Hub id) on the test split of ``cfg.data`` (fold ``fold``) and write its report.

    ``zero_shot``: score with PN prompts of the *target* dataset's classes (cross-dataset evaluation).
    The data pipeline follows the checkpoint (its classes and number of frames), not ``cfg.model``.
    """
    model = FineCLIPER.from_pretrained(checkpoint, clip=clip, longclip=longclip)
    target = dataset_classes(cfg.data.dataset)
    if model.classes != target:
        if not (zero_shot or model.cfg.zero_shot):
            raise EvaluationError(f"{checkpoint} was trained on classes {model.classes}, but {cfg.data.dataset} has "
                                  f"{target}; pass --zero-shot to score with PN prompts of the target classes")
        model.set_classes(target)
    return evaluate_model(cfg, model, fold, out_dir, {"checkpoint": str(checkpoint),
                                                      "zero_shot": bool(zero_shot or model.cfg.zero_shot)})


def evaluate_model(cfg: ExperimentConfig, model: FineCLIPER, fold: int, out_dir: str | Path,
                   record: dict[str, Any]) -> dict[str, Any]:
    """Score ``model`` (classes set to the dataset's) on the test split of fold ``fold``; write the report
    (``record``: what it says about the model, e.g. the checkpoint) and predictions.json."""
    out_dir = Path(out_dir)
    device = resolve_device(cfg.train.device)
    model = model.to(device)
    cfg = dataclasses.replace(cfg, model=model.cfg,
                              data=dataclasses.replace(cfg.data, fold=fold, num_frames=model.cfg.num_frames))
    inputs = make_inputs(cfg, model.tokenize_description, training=False)
    _, test_ds = build_datasets(cfg.data, inputs.train_extras, inputs.test_extras)
    check_datasets([("test", test_ds)], cfg.data.manifest, inputs.notes)
    loader = shard_loader(test_ds, cfg.data.batch_size, cfg.data.workers, Dist(), shuffle=False, seed=cfg.data.seed)
    pred, s = evaluate(model, loader, device, cfg.train.precision, keep_features=True)
    extra = {**record, "fold": fold}
    if inputs.descriptions:
        extra["descriptions"] = inputs.descriptions
    write_fold_report(out_dir, "test", np.array(s["confusion"]), cfg.data.dataset, extra=extra,
                      title=f"{model.cfg.display_name()} · {cfg.data.dataset} fold {fold} test split")
    write_class_similarity_report(out_dir / "test_class_similarity", model, pred,
                                  f"{cfg.data.dataset} fold {fold}: video features vs class prompts (Fig. 5)")
    write_predictions(out_dir / "predictions.json", pred, s)
    return {"fold": fold, **s}
