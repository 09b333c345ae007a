"""Static (per-frame) expression classifiers as clip-level baselines: interface, face crops, clip
aggregation, class mapping and scoring.

A baseline sees face crops, one frame at a time, and predicts over its OWN class names. To compare it
with finecliper on a DFER test split:

1. crop the face of each sampled frame (:func:`crop_faces`, boxes from the face cache or a detector);
2. classify the valid crops → (T, C) probabilities;
3. :func:`aggregate_clip` → (C,) for the clip (mean of probabilities or majority vote, invalid frames
   ignored);
4. :func:`map_to_dataset` → (K,) over the dataset's canonical classes, by NAME through the baseline's
   declared mapping; a dataset class the baseline cannot name (MAFW's contempt, anxiety, helplessness,
   disappointment for a FER2013 model) gets probability 0, so its clips are always misses;
5. :func:`predict_labels` → canonical id, or ``NO_PREDICTION`` (-1);
6. :func:`score_clips` → UAR/WAR with the metrics of ``finecliper.eval.metrics``.

"No prediction" policy: a clip with no valid face frame has no evidence. ``aggregate_clip`` returns
NaNs for it (``empty="nan"``, the default), ``predict_labels`` turns that into ``NO_PREDICTION``, and
scoring counts the clip as a miss for its true class, in an extra "no prediction" column of the
confusion matrix. Guessing instead (a uniform distribution, ``empty="uniform"``) would hand every such
clip to whichever class wins the tie, which inflates that class's recall.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from finecliper.data import labels as L
from finecliper.eval.metrics import confusion_matrix, per_class_recall, uar, war

NO_PREDICTION = -1
NO_PREDICTION_NAME = "no prediction"
AGGREGATE_MODES = ("mean", "vote")

# FER2013's seven classes (fer's label order) onto finecliper's canonical names.
FER2013_TO_CANONICAL: dict[str, str] = {
    "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
    "sad": "sadness", "surprise": "surprise", "neutral": "neutral",
}


class BaselineError(RuntimeError):
    """A baseline that cannot run: missing package or model file, or bad input."""


@runtime_checkable
class FrameClassifier(Protocol):
    """A static expression classifier over face crops."""
    name: str
    class_names: tuple[str, ...]          # its own label names, in output order
    mapping: Mapping[str, str]            # its names -> canonical names (finecliper.data.labels)

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, H, W, 3) uint8 RGB face crops -> (N, C) float32 probabilities (rows sum to 1)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Name, model file and hash, library versions: recorded in every report."""
        ...


# ----------------------------------------------------------------------------- face crops

@dataclass
class FaceCropConfig:
    """Square face crop around a face box (x0, y0, x1, y1).

    side = max box side * (1 + 2 * margin); centre = box centre moved down by ``shift`` * max box side
    (negative = up). Defaults frame a MediaPipe mesh box like fer's Haar box + 10 px offsets: the Haar
    box sits higher (more forehead) and is 1.1-1.2x wider than the mesh extent.
    """
    margin: float = 0.2
    shift: float = -0.06
    size: int = 96                   # crop side in pixels; the classifier resizes to its own input


def crop_boxes(boxes: np.ndarray, cfg: FaceCropConfig) -> tuple[np.ndarray, np.ndarray]:
    """boxes (T, 4) -> crop centres (T, 2) and sides (T,) in frame pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    side0 = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    centres = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2 + cfg.shift * side0], axis=1)
    return centres, np.maximum(side0 * (1 + 2 * cfg.margin), 1.0)


def crop_faces(frames: np.ndarray, boxes: np.ndarray, cfg: FaceCropConfig = FaceCropConfig(),
               valid: np.ndarray | None = None) -> np.ndarray:
    """frames (T, H, W, 3) uint8, boxes (T, 4) -> crops (T, S, S, 3) uint8; invalid frames stay black.

    One affine warp per frame (``finecliper.face.crop.crop_matrix``); outside the frame the edge
    pixels are repeated.
    """
    from finecliper.face.crop import crop_matrix

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    t = len(frames)
    if np.asarray(boxes).shape != (t, 4):
        raise ValueError(f"boxes: expected ({t}, 4) for {t} frames, got {np.asarray(boxes).shape}")
    valid = np.ones(t, bool) if valid is None else np.asarray(valid, bool)
    centres, sides = crop_boxes(boxes, cfg)
    s = cfg.size
    out = np.zeros((t, s, s, 3), np.uint8)
    for i in np.flatnonzero(valid):
        m = crop_matrix(centres[i], float(sides[i]), s)
        out[i] = cv2.warpAffine(frames[i], m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


# ----------------------------------------------------------------------------- clip aggregation

def aggregate_clip(probs: np.ndarray, valid: np.ndarray | None = None, mode: str = "mean",
                   empty: str = "nan") -> np.ndarray:
    """Per-frame probabilities (T, C) -> one clip distribution (C,) float64.

    ``mean``: mean of the valid frames' probabilities. ``vote``: fraction of valid frames whose
    arg-max is each class (a tie is left in the output; ``predict_labels`` then picks the lower class id).
    Invalid frames are ignored (their rows may hold anything, NaN included). With no valid frame:
    ``empty="nan"`` returns all-NaN ("no prediction", see the module docstring), ``"uniform"`` 1/C.
    """
    if mode not in AGGREGATE_MODES:
        raise ValueError(f"mode must be one of {AGGREGATE_MODES}, got {mode!r}")
    if empty not in ("nan", "uniform"):
        raise ValueError(f"empty must be 'nan' or 'uniform', got {empty!r}")
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError(f"probs: expected (T, C) per-frame probabilities, got {p.shape}")
    t, c = p.shape
    v = np.ones(t, bool) if valid is None else np.asarray(valid, bool).reshape(-1)
    if v.shape != (t,):
        raise ValueError(f"valid: expected ({t},) for {t} frames, got {v.shape}")
    if not v.any():
        return np.full(c, np.nan) if empty == "nan" else np.full(c, 1.0 / c)
    pv = p[v]
    if not np.isfinite(pv).all():
        raise ValueError("probs: valid frames hold NaN or inf probabilities")
    if mode == "mean":
        return pv.mean(axis=0)
    return np.bincount(pv.argmax(axis=1), minlength=c) / len(pv)


# ----------------------------------------------------------------------------- class mapping

def check_mapping(class_names: Sequence[str], mapping: Mapping[str, str]) -> dict[str, str]:
    """Every baseline class must map to a canonical class name; returns {name: canonical name}."""
    missing = [n for n in class_names if n not in mapping]
    if missing:
        raise ValueError(f"baseline classes {missing} have no entry in the class mapping {dict(mapping)}")
    extra = [n for n in mapping if n not in class_names]
    if extra:
        raise ValueError(f"class mapping names {extra}, which are not baseline classes {list(class_names)}")
    return {n: L.canonical_name(mapping[n]) for n in class_names}


def mapping_matrix(class_names: Sequence[str], mapping: Mapping[str, str], dataset_classes: Sequence[str]) -> np.ndarray:
    """(C, K) 0/1 matrix: baseline class c feeds dataset class k. Mass on a class the dataset lacks is dropped."""
    canon = check_mapping(class_names, mapping)
    ds = [L.canonical_name(k) for k in dataset_classes]
    m = np.zeros((len(class_names), len(ds)))
    for i, n in enumerate(class_names):
        if canon[n] in ds:
            m[i, ds.index(canon[n])] = 1.0
    return m


def unpredictable_classes(class_names: Sequence[str], mapping: Mapping[str, str],
                          dataset_classes: Sequence[str]) -> list[str]:
    """Dataset classes no baseline class maps onto (their clips can never be hit)."""
    m = mapping_matrix(class_names, mapping, dataset_classes)
    return [k for k, fed in zip(dataset_classes, m.sum(axis=0) > 0) if not fed]


def map_to_dataset(probs: np.ndarray, class_names: Sequence[str], mapping: Mapping[str, str],
                   dataset_classes: Sequence[str]) -> np.ndarray:
    """Probabilities over the baseline's classes (..., C) -> over the dataset's classes (..., K).

    Sums the mass of every baseline class mapped onto each dataset class; unpredictable dataset classes
    get 0. NaN rows (no prediction) stay NaN.
    """
    p = np.asarray(probs, np.float64)
    if p.shape[-1] != len(class_names):
        raise ValueError(f"probs have {p.shape[-1]} classes but the baseline names {len(class_names)}")
    return p @ mapping_matrix(class_names, mapping, dataset_classes)


def predict_labels(probs: np.ndarray) -> np.ndarray:
    """(N, K) clip distributions -> (N,) int64 arg-max ids, NO_PREDICTION for NaN rows."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs: expected (N, K), got {p.shape}")
    none = np.isnan(p).any(axis=1)
    return np.where(none, NO_PREDICTION, np.nan_to_num(p, nan=-1.0).argmax(axis=1)).astype(np.int64)


# ----------------------------------------------------------------------------- scoring

def extended_confusion(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """(K+1, K+1) confusion matrix whose last column counts NO_PREDICTION clips (the last row is 0)."""
    pred = np.asarray(y_pred, np.int64).copy()
    if pred.size and pred.min() < NO_PREDICTION:
        raise ValueError(f"y_pred holds ids below {NO_PREDICTION}")
    pred[pred == NO_PREDICTION] = num_classes
    true = np.asarray(y_true, np.int64)
    if true.size and (true.min() < 0 or true.max() >= num_classes):
        raise ValueError(f"y_true holds ids outside 0..{num_classes - 1}")
    return confusion_matrix(true, pred, num_classes + 1)


def score_clips(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> dict[str, Any]:
    """UAR/WAR counting NO_PREDICTION as a miss: the lead's metrics on the extended matrix.

    The extra row has no true clip, so it never enters UAR (classes without support are left out).
    """
    ext = extended_confusion(y_true, y_pred, num_classes)
    rec = per_class_recall(ext)[:num_classes]
    return {"uar": uar(ext), "war": war(ext), "n": int(ext.sum()),
            "per_class_recall": [None if np.isnan(r) else float(r) for r in rec],
            "n_no_prediction": int(ext[:, num_classes].sum()),
            "no_prediction_per_class": ext[:num_classes, num_classes].astype(int).tolist(),
            "confusion": ext[:num_classes].tolist()}


def fold_confusion(ext: np.ndarray) -> np.ndarray:
    """(K+1, K+1) extended matrix -> (K, K) with the same diagonal and row sums.

    Recall, UAR and WAR only read the diagonal and the row sums, so this square matrix gives the report
    tables exactly; each row's "no prediction" count is parked in a wrong column (the next class).
    Only the Table-2 row is computed from it; the confusion files show the extended matrix.
    """
    ext = np.asarray(ext, np.int64)
    k = ext.shape[0] - 1
    cm = ext[:k, :k].copy()
    if k > 1:
        for c in range(k):
            cm[c, (c + 1) % k] += ext[c, k]
    return cm
