"""Small datasets generated on disk in the official layouts, for end-to-end tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from finecliper.clip import ClipBackbone
from finecliper.clip.testing import random_tiny_clip, save_tiny_clip
from finecliper.clip.tokenizer import load_tokenizer
from finecliper.data.splits import write_dfew_split
from finecliper.model.shapes import clip_config, random_clip

# one clearly different colour per DFEW class: a trivially separable task
PALETTE = np.array([[230, 40, 40], [40, 200, 40], [40, 40, 230], [230, 230, 40], [230, 40, 230], [40, 230, 230],
                    [128, 128, 128]], dtype=np.float32)


def write_clip(folder: Path, label: int, n_frames: int, size: int, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(n_frames):
        img = PALETTE[label] * rng.uniform(0.7, 1.0) + rng.normal(0, 20, (size, size, 3))
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{t + 1:05d}.jpg", quality=95)


def make_dfew_like(root: Path, n_train_per_class: int = 3, n_test_per_class: int = 2, size: int = 32,
                   frames: tuple[int, int] = (10, 20), seed: int = 0, classes: int = 7) -> tuple[Path, Path]:
    """(annotations root, data root) in DFEW's layout: EmoLabel_DataSplit/*/set_1.csv, Clip/clip_224x224/<id>/."""
    def grouped(n: int) -> list[int]:
        return [label for label in range(classes) for _ in range(n)]

    return write_dfew_dataset(root, grouped(n_train_per_class), grouped(n_test_per_class), size, frames, seed)


def make_dfew_clips(root: Path, n_train: int, n_test: int, size: int = 32, frames: tuple[int, int] = (10, 20),
                    seed: int = 0, classes: int = 7) -> tuple[Path, Path]:
    """Like ``make_dfew_like`` but with any clip counts (labels cycle through the classes), e.g. 17 clips
    that do not split evenly over 2 processes."""
    return write_dfew_dataset(root, [i % classes for i in range(n_train)], [i % classes for i in range(n_test)],
                              size, frames, seed)


def write_dfew_dataset(root: Path, train_labels: list[int], test_labels: list[int], size: int,
                       frames: tuple[int, int], seed: int) -> tuple[Path, Path]:
    """One clip per label, train then test, ids from 00001, and fold 1's split files."""
    rng = np.random.default_rng(seed)
    data = root / "DFEW"
    clips = data / "Clip" / "clip_224x224"
    cid = 1
    for split, labels in (("train", train_labels), ("test", test_labels)):
        rows = []
        for label in labels:
            write_clip(clips / f"{cid:05d}", label, int(rng.integers(*frames)), size, rng)
            rows.append((cid, label))
            cid += 1
        write_dfew_split(root / "annotations", 1, split, rows)
    return root / "annotations", data


def tiny_backbone(seed: int, image_size: int = 32, context: int = 77) -> ClipBackbone:
    """A loaded tiny random CLIP (width 64) as ``finecliper.clip.load`` returns one, with its tokenizer."""
    model = random_tiny_clip(seed, vision_width=64, text_width=64, image_size=image_size, context_length=context)
    return ClipBackbone(model=model, format="openai", source=Path(f"tiny{seed}.pt"), identity=f"{seed:064d}",
                        tokenizer=load_tokenizer(context_length=context))


def dfew_with_tiny_clip(root: Path, n_train_per_class: int, n_test_per_class: int) -> tuple[Path, Path, Path]:
    """A DFEW-layout dataset (``make_dfew_like``) and a tiny random CLIP saved as an OpenAI ``.pt`` beside it:
    (annotations, data root, CLIP checkpoint), what a tiny training run needs."""
    ann, data = make_dfew_like(root, n_train_per_class=n_train_per_class, n_test_per_class=n_test_per_class)
    clip = random_clip(clip_config(vision_width=64, vision_layers=2, text_width=64, text_layers=2, image_size=32,
                                   embed_dim=32))
    return ann, data, save_tiny_clip(clip, root / "tiny-openai.pt", "openai")
