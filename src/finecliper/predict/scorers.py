"""What turns a window of face crops into class probabilities: one interface, three kinds of model.

- :class:`FineCLIPERScorer`: a trained FineCLIPER checkpoint (folder or Hub id), or FineCLIPER at
  initialisation (``zero_shot``: adapters start as identity/zero, so it is plain CLIP PN scoring with any
  class list; with Long-CLIP the description path joins, as in the dagger variant);
- :class:`BaselineScorer`: a static per-frame classifier (``baselines``, e.g. fer's FER2013 model) run on
  every frame of the window where the face was found, its probabilities averaged over those frames.

The pipeline (``predict.pipeline``) only knows :class:`Scorer`: which frames of a window it reads, how
their crops are framed, what face analysis it needs, and ``score(windows)``.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from finecliper.baselines import make_baseline
from finecliper.baselines.base import FaceCropConfig, FrameClassifier, check_mapping, crop_boxes, mapping_matrix
from finecliper.data import labels
from finecliper.data.augment import apply_frames, eval_geom, normalize_clip
from finecliper.data.dataset import collate_clips
from finecliper.device import autocast, resolve_device
from finecliper.face.backend import FaceTrack
from finecliper.face.crop import CropTrack
from finecliper.face.maps_extra import render_clip_maps
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.hub import portable_backbones
from finecliper.predict.video import TrackBoxes
from finecliper.predict.windows import Window


class UntrainedClassesWarning(UserWarning):
    """Class names the checkpoint was not trained on (open-vocabulary scoring)."""


@dataclass
class WindowInput:
    """What the pipeline gathered for one window of one track (``frames``: the frames the scorer asked for)."""
    track_id: int
    window: Window
    frames: tuple[int, ...]                  # video frame indices, in order (may repeat: padding)
    crops: np.ndarray                        # (T, S, S, 3) uint8 RGB, framed by the scorer's ``crop_track``
    found: np.ndarray                        # (T,) bool, the face was detected in that frame
    parsing: np.ndarray | None = None        # (T, P, P) uint8 LaPa ids of the analysis crops (needs_maps)
    landmarks: np.ndarray | None = None      # (T, 68, 2) analysis-crop pixels (needs_maps)
    mesh_valid: np.ndarray | None = None     # (T,) bool, the face mesh found the face in the analysis crop
    description: str | None = None           # landmark description of the window (needs_description)


@dataclass
class Scores:
    probs: np.ndarray                                      # (B, K) float32, rows sum to 1
    weights: np.ndarray                                    # (B, M) fusion weight per modality (M may be 0)


@runtime_checkable
class Scorer(Protocol):
    name: str                       # "fer", "finecliper", "zero-shot" (results and reports say which)
    classes: list[str]              # output order of ``score``
    modalities: tuple[str, ...]     # fusion weights reported per window (none for a static baseline)
    needs_maps: bool                # parsing + landmark maps of the crops (face mesh on every frame)
    needs_description: bool         # a landmark description per window
    explainable: bool               # a differentiable model: --explain works
    num_frames: int                 # frames sampled per window (0: it picks them, ``window_frames``)
    warnings: list[str]             # said once per video (e.g. untrained class words)

    def window_frames(self, window: Window, found: np.ndarray) -> tuple[int, ...]:
        """The frames of ``window`` it reads (``found``: (N,) bool over the video, this face detected)."""
        ...

    def crop_track(self, track: TrackBoxes, frame_hw: tuple[int, int]) -> CropTrack | None:
        """How its crops are framed around the track; None: the pipeline's face-analysis crop (``crop.*``)."""
        ...

    def score(self, windows: Sequence[WindowInput]) -> Scores: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# ----------------------------------------------------------------------------- FineCLIPER

def zero_shot_model(clip, longclip=None, classes: Sequence[str] | None = None, num_frames: int = 16,
                    allow_pickle: bool = False) -> FineCLIPER:
    """FineCLIPER at initialisation on frozen CLIP (and Long-CLIP): the CLIP zero-shot baseline of the DFER papers.

    Every adapter starts as identity (its up-projection is zero), the temporal embedding at zero and
    ``ln_post`` as CLIP's, so a clip's feature is the mean of its frames' CLIP image features and the class
    texts are CLIP's text features of the PN prompts. With ``longclip`` the description path (Long-CLIP
    text tower, identity adapters, identity projection) joins as in the dagger variant; that needs equal
    embedding widths, since a projection between different widths would start random. ``allow_pickle``: let a
    TorchScript file (OpenAI's own ``ViT-B-16.pt``) or a pickled checkpoint run its code when loaded.
    """
    cfg = ModelConfig(variant="dagger" if longclip is not None else "base", clip=None if clip is None else str(clip),
                      longclip=None if longclip is None else str(longclip),
                      classes=list(classes or labels.classes("dfew")), num_frames=num_frames, drop_path=0.0,
                      allow_pickle=allow_pickle)
    model = FineCLIPER.from_config(cfg, clip, longclip)
    if longclip is not None:
        a, b = model.description_projection.in_features, model.description_projection.out_features
        if a != b:
            raise ValueError(f"zero-shot with Long-CLIP needs its text embedding ({a}) as wide as CLIP's ({b}): an "
                             f"untrained projection between them would be random; drop --longclip or use matching models")
    return model.eval()


class FineCLIPERScorer:
    """A FineCLIPER model (checkpoint or zero-shot) on windows of ``num_frames`` sampled crops."""

    explainable = True

    def __init__(self, model: FineCLIPER, name: str = "finecliper", source: str | None = None,
                 device: str = "auto", precision: str = "auto", classes: Sequence[str] | None = None):
        self.device = resolve_device(device)
        self.model = model.eval().to(self.device)
        self.precision = precision
        self.name, self.source = name, source
        self.modalities = tuple(model.modalities)
        self.needs_maps = model.cfg.needs_maps()
        self.needs_description = "description" in self.modalities
        self.num_frames = int(model.cfg.num_frames)
        self.image_size = int(model.clip.config.vision_config.image_size)
        self.trained_classes = list(model.cfg.classes)
        self.classes = list(model.classes)
        self.warnings: list[str] = []
        if classes:
            self.set_classes(classes)

    def set_classes(self, classes: Sequence[str]) -> list[str]:
        """Score against PN prompts of any class words; returns (and warns about) the words it was not trained on."""
        classes = check_classes(classes)
        self.model.set_classes(classes)
        self.classes = classes
        self.warnings = []
        trained = {c.lower() for c in self.trained_classes}
        untrained = [c for c in classes if c.lower() not in trained]
        if untrained and self.name != "zero-shot":  # at initialisation no class word is trained
            msg = (f"open-vocabulary classes: {', '.join(untrained)} were NOT trained (this checkpoint knows "
                   f"{', '.join(self.trained_classes)}); their scores come from the trained text path on the prompts "
                   f"'{self.model.cfg.pos_template.format(untrained[0])}' / "
                   f"'{self.model.cfg.neg_template.format(untrained[0])}' and are not calibrated")
            self.warnings.append(msg)
            warnings.warn(msg, UntrainedClassesWarning, stacklevel=2)
        return untrained

    def window_frames(self, window: Window, found: np.ndarray) -> tuple[int, ...]:
        return window.indices

    def crop_track(self, track: TrackBoxes, frame_hw: tuple[int, int]) -> None:
        return None  # the datasets' face crops: the smoothed square of ``PredictConfig.crop``

    def tensors(self, w: WindowInput) -> dict[str, torch.Tensor]:
        """One window's model inputs (no batch axis), exactly as the test-time dataset builds them."""
        sc = w.crops.shape[1]
        geom = eval_geom(sc, sc, self.image_size)
        item = {"frames": normalize_clip(apply_frames(w.crops, geom))}             # (T, 3, S, S)
        if self.needs_maps:
            t = len(w.frames)
            ft = FaceTrack(landmarks68=w.landmarks, parsing=w.parsing, boxes=np.zeros((t, 4), np.float32),
                           valid=w.mesh_valid.copy(), confidence=np.zeros(t, np.float32),
                           n_faces=np.zeros(t, np.int16), reasons=np.zeros(t, np.uint8), frame_hw=(sc, sc))
            parsing, marks, valid = render_clip_maps(ft, geom, (sc, sc))
            item["parsing_maps"] = normalize_clip(parsing)                         # (T, 3, S, S)
            item["landmark_maps"] = normalize_clip(marks)                          # (T, 3, S, S)
            item["face_valid"] = torch.from_numpy(valid)                           # (T,) bool
        if self.needs_description:
            tok = self.model.tokenize_description([w.description or ""], context_length=self.model.cfg.desc_context_length)
            item["description_tokens"] = tok[0]                                    # (L,) long
        return item

    def batch(self, windows: Sequence[WindowInput]) -> dict[str, torch.Tensor]:
        batch = collate_clips([self.tensors(w) for w in windows])  # description tokens cut to the longest
        return {key: v.to(self.device) for key, v in batch.items()}

    @torch.no_grad()
    def score(self, windows: Sequence[WindowInput]) -> Scores:
        batch = self.batch(windows)
        with autocast(self.device, self.precision):
            out = self.model(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return Scores(torch.softmax(out.logits.float(), -1).cpu().numpy(), out.weights.float().cpu().numpy())

    def describe(self) -> dict[str, Any]:
        cfg = self.model.cfg
        return {"scorer": self.name, "source": self.source, "variant": cfg.variant, "classes": self.classes,
                "trained_classes": self.trained_classes, "num_frames": self.num_frames,
                "backbones": portable_backbones(self.model.backbone_identities, self.model.cfg.backbone_roles())}

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- static baselines

class BaselineScorer:
    """A per-frame classifier on every frame of the window where the face was found, averaged."""

    modalities: tuple[str, ...] = ()
    needs_maps = False
    needs_description = False
    explainable = False
    num_frames = 0

    def __init__(self, classifier: FrameClassifier, crop: FaceCropConfig = FaceCropConfig()):
        self.classifier, self.crop = classifier, crop
        canon = check_mapping(classifier.class_names, classifier.mapping)
        self.name = classifier.name
        self.classes = [c for c in labels.MAFW11 if c in canon.values()]  # canonical order
        self._to_classes = mapping_matrix(classifier.class_names, classifier.mapping, self.classes)  # (C, K)
        self.warnings: list[str] = []

    def window_frames(self, window: Window, found: np.ndarray) -> tuple[int, ...]:
        frames = tuple(i for i in range(window.start, window.end) if found[i])
        return frames or tuple(range(window.start, window.end))

    def crop_track(self, track: TrackBoxes, frame_hw: tuple[int, int]) -> CropTrack:
        """The baseline's own framing (``FaceCropConfig``) of each detected box; gaps interpolated."""
        centres, sides = crop_boxes(track.boxes, self.crop)
        k = np.flatnonzero(track.found)
        n = np.arange(len(sides))
        centres = np.stack([np.interp(n, k, centres[k, 0]), np.interp(n, k, centres[k, 1])], 1)
        return CropTrack(centres.astype(np.float32), np.interp(n, k, sides[k]).astype(np.float32), track.found.copy(),
                         self.crop.size, frame_hw)

    def score(self, windows: Sequence[WindowInput]) -> Scores:
        probs = np.zeros((len(windows), len(self.classes)), np.float32)
        for b, w in enumerate(windows):
            use = w.found if w.found.any() else np.ones(len(w.found), bool)
            p = self.classifier.predict_proba(w.crops[use]).mean(0) @ self._to_classes   # (K,)
            probs[b] = p / max(float(p.sum()), 1e-12)
        return Scores(probs, np.zeros((len(windows), 0), np.float32))

    def describe(self) -> dict[str, Any]:
        return {"scorer": self.name, "classes": self.classes, **self.classifier.describe(),
                "aggregation": "mean of the per-frame probabilities over the frames of a window where the face was found"}

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- choosing one

def check_classes(classes: Sequence[str]) -> list[str]:
    classes = [c.strip() for c in classes if c and c.strip()]
    if len(classes) < 2:
        raise ValueError(f"--classes needs at least two class names, got {classes}")
    dup = sorted({c for c in classes if classes.count(c) > 1})
    if dup:
        raise ValueError(f"--classes names {dup} more than once")
    return classes


def make_scorer(*, checkpoint: str | Path | None = None, zero_shot: bool = False, baseline: str | None = None,
                clip=None, longclip=None, classes: Sequence[str] | None = None, device: str = "auto",
                precision: str = "auto", revision: str | None = None, num_frames: int = 16,
                allow_pickle: bool = False) -> Scorer:
    """One scorer: ``checkpoint`` (folder or Hub id) | ``zero_shot`` (needs ``clip``) | ``baseline`` (e.g. "fer").

    None of them: the fer baseline (the caller says so to the user).
    """
    chosen = [k for k, v in (("checkpoint", checkpoint), ("zero_shot", zero_shot), ("baseline", baseline)) if v]
    if len(chosen) > 1:
        raise ValueError(f"choose one model: {' or '.join(chosen)}, not both")
    if checkpoint:
        model = FineCLIPER.from_pretrained(checkpoint, clip=clip, longclip=longclip, revision=revision)
        return FineCLIPERScorer(model, "finecliper", str(checkpoint), device, precision, classes)
    if zero_shot:
        if clip is None:
            raise ValueError("zero-shot scoring needs the frozen CLIP checkpoint: pass --clip PATH (Python: clip=PATH)")
        model = zero_shot_model(clip, longclip, classes, num_frames, allow_pickle)
        return FineCLIPERScorer(model, "zero-shot", str(clip), device, precision)
    if classes:
        raise ValueError(f"the {baseline or 'fer'} baseline scores its own classes; --classes needs a FineCLIPER model "
                         f"(--checkpoint or --zero-shot)")
    return BaselineScorer(make_baseline(baseline or "fer"))
