"""The demo dataset: expression clips animated from the shipped face photos, written in DFEW's layout.

Layout (what ``finecliper prepare --dataset dfew --variant clip_224x224`` reads; the folder keeps DFEW's
name whatever the frame size)::

    <out>/annotations/EmoLabel_DataSplit/train(single-labeled)/set_1.csv   video_name,label (1-based)
    <out>/annotations/EmoLabel_DataSplit/test(single-labeled)/set_1.csv
    <out>/DFEW/Clip/clip_224x224/00001/00001.jpg ...
    <out>/demo_dataset.json     identities, every clip's expression and animation parameters
    <out>/demo_truth.npz        the exact moved landmarks of every clip, iBUG-68 (T, 68, 2), by clip id

Every identity (one photo) gets ``clips_per_identity_per_class`` clips of each of the 7 DFEW classes;
the test split holds whole identities that never appear in training, so the scores measure
generalisation to unseen faces. Each clip's randomness comes from ``[seed, identity, class, k]``, so
the dataset does not depend on the order or the number of workers that render it.
"""
from __future__ import annotations

import dataclasses
import io
import multiprocessing as mp_ctx
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from finecliper.demo.animate import EXPRESSIONS, animate, sample_clip_params
from finecliper.demo.faces import DemoFace, load_faces
from finecliper.face.layout import MESH_TO_68
from finecliper.data.splits import write_dfew_split
from finecliper.io import atomic_write, write_json

CLIPS_DIR = Path("DFEW") / "Clip" / "clip_224x224"
SPLITS_DIR = Path("annotations") / "EmoLabel_DataSplit"
INFO_FILE = "demo_dataset.json"
TRUTH_FILE = "demo_truth.npz"
GENERATOR_VERSION = 1


@dataclass
class DemoClip:
    clip_id: str  # 5-digit DFEW-style id
    identity: str
    expression: str
    label: int  # 0-based, DFEW order (= EXPRESSIONS index)
    split: str  # train | test
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoDataset:
    root: Path
    clips: list[DemoClip]
    train_identities: list[str]
    test_identities: list[str]
    skipped_photos: list[str]
    seconds: float = 0.0

    @property
    def annotations(self) -> Path:
        return self.root / "annotations"

    @property
    def data_root(self) -> Path:
        return self.root / "DFEW"

    def clip_dir(self, clip_id: str) -> Path:
        return self.root / CLIPS_DIR / clip_id

    def split(self, name: str) -> list[DemoClip]:
        return [c for c in self.clips if c.split == name]


def split_identities(names: list[str], test_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, test) names: a seeded shuffle, at least one identity on each side."""
    if len(names) < 2:
        raise ValueError(f"need at least 2 identities to hold some out for testing, got {len(names)}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    order = np.random.default_rng([seed, 7777]).permutation(len(names))
    n_test = min(len(names) - 1, max(1, round(test_fraction * len(names))))
    test = sorted(names[i] for i in order[:n_test])
    train = sorted(names[i] for i in order[n_test:])
    return train, test


def write_jpegs(folder: Path, frames: np.ndarray, quality: int = 95) -> None:
    """frames (T, H, W, 3) uint8 RGB → folder/00001.jpg …, each written atomically."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        with atomic_write(folder / f"{t + 1:05d}.jpg") as f:
            f.write(buf.getvalue())


@dataclass(frozen=True)
class Motion:
    """How strong the expressions are and whether the head drifts during a clip."""

    intensity_gain: float = 1.0  # multiplies each clip's random intensity (0.7-1.3 times the recipe)
    pose_drift: bool = True  # rotation, scale and position drift a little over the clip (else fixed per clip)
    pose_scale: float = 1.0  # shrinks each clip's random pose (rotation ±8°, scale ±8%, shift ±4% at 1)


def clip_params(expression: str, frames: int, rng: np.random.Generator, motion: Motion):
    """One clip's random parameters (``animate.sample_clip_params``), then ``motion`` applied."""
    p = sample_clip_params(expression, frames, rng)
    p = dataclasses.replace(p, intensity=p.intensity * motion.intensity_gain)
    if not motion.pose_drift:
        p = dataclasses.replace(p, rotation=(p.rotation[0],) * 2, scale=(p.scale[0],) * 2, shift=(p.shift[0],) * 2)
    k = motion.pose_scale
    return dataclasses.replace(p, rotation=tuple(k * r for r in p.rotation), scale=tuple(1 + k * (s - 1) for s in p.scale),
                               shift=tuple(tuple(k * v for v in sh) for sh in p.shift))


def _render(job: tuple[DemoFace, DemoClip, int, int, int, str, Motion]) -> tuple[str, np.ndarray, dict[str, Any]]:
    """Render one clip and write its frames; returns (clip id, true landmarks (T, 68, 2), its parameters)."""
    face, clip, frames, size, seed, out, motion = job
    i_face, k = clip.params.pop("_identity_index"), clip.params.pop("_k")
    rng = np.random.default_rng([seed, i_face, clip.label, k])
    params = clip_params(clip.expression, frames, rng, motion)
    video, points = animate(face.image, face.mesh, params, size, return_points=True)
    write_jpegs(Path(out) / CLIPS_DIR / clip.clip_id, video)
    return clip.clip_id, points[:, MESH_TO_68].astype(np.float32), dataclasses.asdict(params)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def make_demo_dataset(
    out: str | Path,
    n_identities: int = 24,
    clips_per_identity_per_class: int = 1,
    frames: int = 16,
    size: int = 112,
    seed: int = 0,
    test_fraction: float = 0.25,
    *,
    workers: int = 1,
    faces: list[DemoFace] | None = None,
    skipped_photos: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    motion: Motion = Motion(),
) -> DemoDataset:
    """Generate the dataset under ``out`` (see the module doc); returns what was written.

    ``faces`` (from ``faces.load_faces``) can be passed to reuse detections; otherwise the first
    ``n_identities`` shipped photos with a detectable face are used. ``progress(done, total)`` after each clip.
    ``motion``: expression strength and head drift (the defaults are the FACS-prototype amplitudes, with drift).
    """
    t0 = time.perf_counter()
    out = Path(out)
    if clips_per_identity_per_class < 1:
        raise ValueError(f"clips_per_identity_per_class must be >= 1, got {clips_per_identity_per_class}")
    if not 8 <= frames <= 128:
        raise ValueError(f"frames must be between 8 and 128, got {frames}")
    if not 32 <= size <= 512:
        raise ValueError(f"size must be between 32 and 512 pixels, got {size}")
    if faces is None:
        faces, skipped_photos = load_faces(n_identities)
    faces = faces[:n_identities]
    if len(faces) < n_identities:
        raise ValueError(f"asked for {n_identities} identities but only {len(faces)} shipped photos have a face "
                         f"FaceMesh can find (skipped: {', '.join(skipped_photos or []) or 'none'}); ask for fewer")
    if (out / SPLITS_DIR).exists() or (out / CLIPS_DIR).exists():
        raise FileExistsError(f"{out} already holds a dataset; remove it or choose another --out")
    train_ids, test_ids = split_identities([f.name for f in faces], test_fraction, seed)
    test_set = set(test_ids)

    clips: list[DemoClip] = []
    jobs = []
    for i_face, face in enumerate(faces):
        for label, expression in enumerate(EXPRESSIONS):
            for k in range(clips_per_identity_per_class):
                clip = DemoClip(f"{len(clips) + 1:05d}", face.name, expression, label,
                                "test" if face.name in test_set else "train", {"_identity_index": i_face, "_k": k})
                clips.append(clip)
                jobs.append((face, dataclasses.replace(clip, params=dict(clip.params)), frames, size, seed, str(out), motion))
    by_id = {c.clip_id: c for c in clips}
    truth: dict[str, np.ndarray] = {}

    def record(res) -> None:
        cid, pts, params = res
        truth[cid] = pts
        by_id[cid].params = params
        if progress:
            progress(len(truth), len(jobs))

    if workers <= 1:
        for job in jobs:
            record(_render(job))
    else:
        with mp_ctx.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for res in pool.imap_unordered(_render, jobs, chunksize=4):
                record(res)

    for split in ("train", "test"):
        write_dfew_split(out / SPLITS_DIR.parent, 1, split, [(c.clip_id, c.label) for c in clips if c.split == split])
    buf = io.BytesIO()
    np.savez_compressed(buf, **{cid: truth[cid] for cid in sorted(truth)})
    with atomic_write(out / TRUTH_FILE) as f:
        f.write(buf.getvalue())
    ds = DemoDataset(out, clips, train_ids, test_ids, list(skipped_photos or []), time.perf_counter() - t0)
    write_json(out / INFO_FILE, {
        "what": "synthetic expression clips animated from still photos (finecliper demo); not a real DFER dataset",
        "generator_version": GENERATOR_VERSION,
        "config": {"n_identities": n_identities, "clips_per_identity_per_class": clips_per_identity_per_class,
                   "frames": frames, "size": size, "seed": seed, "test_fraction": test_fraction,
                   "motion": dataclasses.asdict(motion)},
        "classes": list(EXPRESSIONS),
        "identities": {"train": train_ids, "test": test_ids,
                       "sources": {f.name: f.source for f in faces}},
        "skipped_photos": ds.skipped_photos,
        "clips": [dataclasses.asdict(c) for c in clips],
    })
    return ds


def load_demo_dataset(root: str | Path) -> DemoDataset:
    """Read back what ``make_demo_dataset`` wrote (``demo_dataset.json``)."""
    import json

    root = Path(root)
    path = root / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {root} is not a demo dataset (make one with make_demo_dataset)")
    try:
        info = json.loads(path.read_text())
        clips = [DemoClip(**c) for c in info["clips"]]
        return DemoDataset(root, clips, info["identities"]["train"], info["identities"]["test"], info["skipped_photos"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a valid demo dataset description ({type(e).__name__}: {e})") from e


def load_truth(root: str | Path) -> dict[str, np.ndarray]:
    """clip id → the exact moved iBUG-68 landmarks (T, 68, 2) in frame pixels."""
    with np.load(Path(root) / TRUTH_FILE) as z:
        return {k: z[k] for k in z.files}
