"""ClipDataset: records -> 16 sampled, augmented, CLIP-normalised frames (+ whatever extras add).

Per item: open the clip, sample T indices (TSN segments), sample ONE geometry/colour draw for the
clip, apply it to every frame, then let each ``ClipExtra`` (face maps, description tokens) load its
own tensors for the same indices and geometry.

Randomness: eval is deterministic (segment centres, whole-frame resize). In training the item RNG is
``np.random.default_rng([seed, epoch, index])``, so any worker, any resume and any process order
reproduce the same clip; call ``set_epoch(epoch)`` before each epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch.utils.data import Dataset

from finecliper.clip.tokenizer import truncate_to_longest
from finecliper.config import ConfigError
from finecliper.data import augment as A
from finecliper.data import labels as L
from finecliper.data.frames import clips_root, open_frames, resolve_clip_path
from finecliper.data.sampling import PAD_MODES, sample_segment_indices
from finecliper.data.prepare import load_manifest
from finecliper.data.splits import ClipRecord, read_split


@dataclass
class DataConfig:
    dataset: str = "dfew"                  # dfew | ferv39k | mafw
    annotations: str = ""                  # folder holding the split files (or its parent)
    root: str = ""                         # dataset data root
    variant: str = "clip_224x224"          # frame variant folder under root ('.' = root itself); recorded
    layout: str = "auto"                   # split-file layout, see finecliper.data.splits
    label_base: str = "auto"               # auto | 0 | 1 (integer-id layouts only, checked against the file)
    fold: int = 1                          # 1..5 (DFEW, MAFW); 1 for FERV39k (labels.num_folds)
    captions: bool = False                 # MAFW with_caption files
    compound: bool = False                 # MAFW compound labels
    manifest: str | None = None            # from `finecliper prepare`; gives frame counts and paths
    num_frames: int | None = None          # frames sampled per clip; None: the model's (model.num_frames)
    image_size: int = 224  # model input side, px (frames and maps are resized to it)
    pad: str = "last"                      # last | first | loop (clips shorter than num_frames)
    augment: str = "auto"                  # auto (= dataset preset) | dfew | ferv39k | mafw | none
    seed: int = 1  # sampling and augmentation seed
    batch_size: int = 8  # clips per batch (per process under torchrun)
    workers: int = 2  # data-loading processes (0: in the main process)

    def __post_init__(self) -> None:
        try:
            nf = L.num_folds(self.dataset)
        except L.LabelError as e:
            raise ConfigError(f"data.dataset: {e}") from e
        checks = [
            (1 <= self.fold <= nf, f"data.fold must be 1..{nf} for {self.dataset}, got {self.fold}"),
            (self.pad in PAD_MODES, f"data.pad must be one of {', '.join(PAD_MODES)}, got {self.pad!r}"),
            (self.augment == "auto" or self.augment in A.PRESETS,
             f"data.augment must be auto or one of {', '.join(A.PRESETS)}, got {self.augment!r}"),
            (self.num_frames is None or self.num_frames >= 1, f"data.num_frames must be at least 1, got {self.num_frames}"),
            (self.image_size >= 1, f"data.image_size must be at least 1, got {self.image_size}"),
            (self.batch_size >= 1, f"data.batch_size must be at least 1, got {self.batch_size}"),
            (self.workers >= 0, f"data.workers must be >= 0, got {self.workers}"),
            (self.label_base in ("auto", "0", "1"), f"data.label_base must be auto, 0 or 1, got {self.label_base!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    def augment_preset(self) -> str:
        return self.dataset.lower() if self.augment == "auto" else self.augment

    def clips_root(self) -> Path:
        return clips_root(self.root, self.variant)


@runtime_checkable
class ClipExtra(Protocol):
    """Adds tensors to a dataset item, aligned with the sampled frames and geometry."""

    def load(self, record: ClipRecord, indices: np.ndarray, geom: A.GeomParams,
             src_hw: tuple[int, int]) -> dict[str, torch.Tensor]: ...


class ClipDataset(Dataset):
    """Items: ``frames`` (T, 3, S, S) float32, ``label`` int, ``clip_id`` str, ``indices`` (T,) long, + extras."""

    def __init__(self, records: Sequence[ClipRecord], data_root: str | Path, *, train: bool,
                 num_frames: int = 16, image_size: int = 224, augment: str | A.AugmentPreset = "none",
                 seed: int = 1, pad: str = "last", extras: Sequence[ClipExtra] = (),
                 clip_paths: Mapping[str, str] | None = None):
        self.records = list(records)
        self.data_root = Path(data_root)
        self.train = train
        self.num_frames = num_frames
        self.image_size = image_size
        self.preset = A.get_preset(augment)
        self.seed = seed
        self.pad = pad
        self.extras = tuple(extras)
        self.clip_paths = dict(clip_paths or {})  # clip_id -> path relative to data_root (from a manifest)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def rng_for(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def _path(self, rec: ClipRecord) -> Path:
        rel = self.clip_paths.get(rec.clip_id)
        return self.data_root / rel if rel else resolve_clip_path(self.data_root, rec)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.records[index]
        src = open_frames(self._path(rec))
        rng = self.rng_for(index) if self.train else None
        idx = sample_segment_indices(src.num_frames, self.num_frames, self.train, rng, self.pad)  # (T,)
        frames = src.read(idx)                                                                    # (T, H, W, 3) uint8
        h, w = frames.shape[1:3]
        if self.train:
            geom, jit = A.sample_clip_aug(rng, h, w, self.preset, self.image_size)
            frames = A.apply_jitter(frames, jit)
        else:
            geom = A.eval_geom(h, w, self.image_size)
        frames = A.apply_frames(frames, geom)                                                      # (T, S, S, 3)
        item: dict[str, Any] = {
            "frames": A.normalize_clip(frames),                                                   # (T, 3, S, S)
            "label": int(rec.label),
            "clip_id": rec.clip_id,
            "indices": torch.from_numpy(idx.astype(np.int64)),
        }
        for ex in self.extras:
            extra = ex.load(rec, idx, geom, (h, w))
            clash = set(extra) & set(item)
            if clash:
                raise KeyError(f"{type(ex).__name__} returned keys {sorted(clash)} that are already in the item")
            item.update(extra)
        return item


def collate_clips(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors (and ints/floats into tensors); keep strings and anything else as lists.

    Description tokens are cut after the batch's longest text (a 35-token description padded to 248
    would cost 7x more in the text tower, and change nothing under its causal mask).
    """
    out: dict[str, Any] = {}
    for k in batch[0]:
        vals = [b[k] for b in batch]
        v0 = vals[0]
        if isinstance(v0, torch.Tensor):
            out[k] = torch.stack(vals)
        elif isinstance(v0, (bool, np.bool_)):
            out[k] = torch.tensor(vals, dtype=torch.bool)
        elif isinstance(v0, (int, np.integer)):
            out[k] = torch.tensor(vals, dtype=torch.long)
        elif isinstance(v0, (float, np.floating)):
            out[k] = torch.tensor(vals, dtype=torch.float32)
        else:
            out[k] = vals
    if "description_tokens" in out:
        out["description_tokens"] = truncate_to_longest(out["description_tokens"])
    return out


def build_datasets(cfg: DataConfig, extras: Sequence[ClipExtra] = (),
                   test_extras: Sequence[ClipExtra] | None = None) -> tuple[ClipDataset, ClipDataset]:
    """(train, test) datasets of ``cfg.fold`` from the split files (and the manifest, when given).

    ``test_extras`` default to ``extras`` (zero-shot training pairs train clips with captions only)."""
    if cfg.num_frames is None:
        raise ConfigError("data.num_frames is not set (in an experiment config it follows model.num_frames)")
    kw = dict(layout=cfg.layout, label_base=cfg.label_base, captions=cfg.captions, compound=cfg.compound)
    tr = read_split(cfg.dataset, cfg.annotations, cfg.fold, "train", **kw)
    te = read_split(cfg.dataset, cfg.annotations, cfg.fold, "test", **kw)
    paths = load_manifest(cfg.manifest).clip_paths() if cfg.manifest else {}
    root = cfg.clips_root()
    common = dict(num_frames=cfg.num_frames, image_size=cfg.image_size, seed=cfg.seed, pad=cfg.pad,
                  clip_paths=paths)
    return (ClipDataset(tr, root, train=True, augment=cfg.augment_preset(), extras=extras, **common),
            ClipDataset(te, root, train=False, augment="none", extras=extras if test_extras is None else test_extras,
                        **common))
