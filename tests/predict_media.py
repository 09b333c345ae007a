"""Generated test videos with real faces (skimage astronaut, matplotlib grace_hopper) and tiny checkpoints."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def astronaut_face() -> np.ndarray:
    from skimage import data

    return data.astronaut()[30:230, 125:325]  # (200, 200, 3) RGB, the face with some margin


def hopper_face() -> np.ndarray:
    import matplotlib

    img = cv2.imread(str(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"))
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)[60:420, 120:480]


def camera_frame(h: int, w: int) -> np.ndarray:
    from skimage import data

    return cv2.resize(np.repeat(data.camera()[:, :, None], 3, 2), (w, h), interpolation=cv2.INTER_AREA)


def paste(canvas: np.ndarray, face: np.ndarray, x: int, y: int, side: int) -> None:
    canvas[y:y + side, x:x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)


def two_face_frames(n: int, h: int = 240, w: int = 360, gap: tuple[int, int] | None = None) -> np.ndarray:
    """Astronaut (120 px, left, drifting right/down) and Hopper (96 px, right, drifting left).

    ``gap=(a, b)``: Hopper is absent from frames a..b-1 (the face is lost, then comes back).
    """
    a, g = astronaut_face(), hopper_face()
    out = np.empty((n, h, w, 3), np.uint8)
    for k in range(n):
        f = np.full((h, w, 3), 90, np.uint8)
        paste(f, a, 20 + k // 2, 50 + k // 4, 120)
        if gap is None or not (gap[0] <= k < gap[1]):
            paste(f, g, 230 - k // 3, 70, 96)
        out[k] = f
    return out


def write_video(path: str | Path, frames: np.ndarray, fps: int = 10, codec: str = "libx264") -> Path:
    from finecliper.data.frames import write_video as encode

    path = Path(path)
    encode(path, frames, fps, codec=codec, crf=14)
    return path


def tiny_checkpoint(root: str | Path, variant: str = "base", classes=("happiness", "sadness", "neutral", "anger"),
                    num_frames: int = 4, seed: int = 0) -> Path:
    """A tiny FineCLIPER checkpoint (random CLIP, random adapters) saved like `finecliper train` does."""
    import torch

    from finecliper.clip.testing import random_tiny_clip, save_tiny_clip
    from finecliper.model.config import ModelConfig
    from finecliper.model.finecliper import FineCLIPER

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    clip = save_tiny_clip(random_tiny_clip(seed, vision_width=64, text_width=64, image_size=32), root / "clip.pt", "openai")
    longclip = None
    if variant in ("dagger", "star_dagger"):
        longclip = save_tiny_clip(random_tiny_clip(seed + 1, vision_width=64, text_width=64, image_size=32,
                                                   context_length=248), root / "longclip.pt", "longclip")
    cfg = ModelConfig(variant=variant, clip=str(clip), longclip=str(longclip) if longclip else None,
                      classes=list(classes), num_frames=num_frames, drop_path=0.0)
    model = FineCLIPER.from_config(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # adapters start at zero: randomise every tunable tensor so the checkpoint matters
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    out = root / f"ckpt_{variant}"
    model.save_pretrained(out)
    return out
