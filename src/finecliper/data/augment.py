"""Clip-level augmentation: parameters are sampled ONCE per clip, then applied identically to every
frame, to label maps (nearest) and to point sets, so RGB, parsing maps and landmarks stay aligned.

Geometry is one affine map, source -> output, composed as rotate (about the frame centre, as
torchvision's RandomRotation) -> crop box -> resize to S x S -> horizontal flip (DFER-CLIP's order).

Pixel convention: integer coordinates are pixel *centres* (cv2 / array-index convention): a point
(x, y) is drawn at ``img[round(y), round(x)]``. ``apply_points`` uses the same matrix that
``apply_image`` uses, so a dot drawn on the source lands on the same output pixel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class GeomParams:
    x0: int            # crop box in source pixels (after rotation; same frame size)
    y0: int
    w: int
    h: int
    flip: bool         # horizontal flip of the output
    angle: float       # degrees, counter-clockwise, about the source frame centre
    out_size: int      # S: output is S x S
    src_h: int
    src_w: int

    def matrix(self) -> np.ndarray:
        """(2, 3) float64 affine mapping source pixel indices -> output pixel indices."""
        S = self.out_size
        half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])      # index -> continuous
        unhalf = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])  # continuous -> index
        R = np.eye(3)
        if self.angle:
            R[:2] = _rotation(self.src_w / 2.0, self.src_h / 2.0, self.angle)
        C = np.array([[S / self.w, 0, -self.x0 * S / self.w], [0, S / self.h, -self.y0 * S / self.h], [0, 0, 1]])
        F = np.array([[-1, 0, S], [0, 1, 0], [0, 0, 1]]) if self.flip else np.eye(3)
        return (unhalf @ F @ C @ R @ half)[:2]


def _rotation(cx: float, cy: float, angle: float) -> np.ndarray:
    """cv2.getRotationMatrix2D without the cv2 import: CCW by ``angle`` degrees about (cx, cy)."""
    a, b = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return np.array([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy]])


def sample_geom(rng: np.random.Generator, h: int, w: int, *, scale: tuple[float, float] = (0.08, 1.0),
                ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_p: float = 0.5, rotate_deg: float = 0.0,
                out_size: int = 224) -> GeomParams:
    """Random-resized-crop box (torchvision's algorithm: 10 tries, then a centre crop), flip, rotation."""
    area = h * w
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    box = None
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        ar = math.exp(rng.uniform(*log_r))
        cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            box = (int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch)
            break
    if box is None:  # fallback: largest centre crop with the aspect ratio clamped into range
        in_r = w / h
        if in_r < ratio[0]:
            cw, ch = w, int(round(w / ratio[0]))
        elif in_r > ratio[1]:
            cw, ch = int(round(h * ratio[1])), h
        else:
            cw, ch = w, h
        box = ((w - cw) // 2, (h - ch) // 2, cw, ch)
    flip = bool(rng.random() < flip_p)
    angle = float(rng.uniform(-rotate_deg, rotate_deg)) if rotate_deg > 0 else 0.0
    return GeomParams(*box, flip=flip, angle=angle, out_size=out_size, src_h=h, src_w=w)


def eval_geom(h: int, w: int, out_size: int = 224) -> GeomParams:
    """The whole frame resized to S x S (DFER-CLIP's test transform; no crop, no flip)."""
    return GeomParams(0, 0, w, h, flip=False, angle=0.0, out_size=out_size, src_h=h, src_w=w)


def apply_image(img: np.ndarray, p: GeomParams, interp: str = "bilinear") -> np.ndarray:
    """img: (H, W) or (H, W, C) -> (S, S) or (S, S, C), same dtype. ``nearest`` for label maps."""
    import cv2

    if interp not in ("bilinear", "nearest"):
        raise ValueError(f"interp must be 'bilinear' or 'nearest', got {interp!r}")
    if img.shape[:2] != (p.src_h, p.src_w):
        raise ValueError(f"image is {img.shape[:2]} but the parameters were sampled for {(p.src_h, p.src_w)}")
    S = p.out_size
    if img.ndim == 3 and img.shape[2] > 4:  # cv2 warps at most 4 channels at once
        return np.concatenate([apply_image(img[..., i:i + 4], p, interp) for i in range(0, img.shape[2], 4)], axis=2)
    squeeze = img.ndim == 3 and img.shape[2] == 1
    src = np.ascontiguousarray(img[..., 0] if squeeze else img)
    if p.angle == 0.0:
        # crop by slicing + resize: same half-pixel mapping as matrix(), and INTER_AREA anti-aliases shrinks
        crop = src[p.y0:p.y0 + p.h, p.x0:p.x0 + p.w]
        if interp == "nearest":
            flag = cv2.INTER_NEAREST_EXACT
        else:
            flag = cv2.INTER_AREA if (p.w > S and p.h > S) else cv2.INTER_LINEAR
        out = crop if (p.w, p.h) == (S, S) else cv2.resize(crop, (S, S), interpolation=flag)
        if p.flip:
            out = out[:, ::-1]
    else:
        flag = cv2.INTER_NEAREST if interp == "nearest" else cv2.INTER_LINEAR
        out = cv2.warpAffine(src, p.matrix(), (S, S), flags=flag, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out = np.ascontiguousarray(out)
    return out[..., None] if squeeze else out


def apply_frames(frames: np.ndarray, p: GeomParams, interp: str = "bilinear") -> np.ndarray:
    """frames: (T, H, W, C) -> (T, S, S, C), one geometry for the whole clip."""
    return np.stack([apply_image(f, p, interp) for f in frames])


def apply_points(pts: np.ndarray, p: GeomParams) -> np.ndarray:
    """pts: (..., 2) (x, y) in source pixel indices -> (..., 2) in output pixel indices."""
    pts = np.asarray(pts, dtype=np.float64)
    if pts.shape[-1] != 2:
        raise ValueError(f"points must have shape (..., 2), got {pts.shape}")
    M = p.matrix()
    return pts @ M[:, :2].T + M[:, 2]


# ----------------------------------------------------------------------------- colour

@dataclass(frozen=True)
class JitterParams:
    brightness: float = 1.0   # multiplicative factors; 1 = unchanged
    contrast: float = 1.0
    saturation: float = 1.0


def sample_jitter(rng: np.random.Generator, brightness: float = 0.0, contrast: float = 0.0,
                  saturation: float = 0.0) -> JitterParams:
    """Factors ~ U(max(0, 1-x), 1+x), as torchvision's ColorJitter, one draw per clip."""
    def f(x: float) -> float:
        return float(rng.uniform(max(0.0, 1 - x), 1 + x)) if x > 0 else 1.0
    return JitterParams(f(brightness), f(contrast), f(saturation))


def _gray(x: np.ndarray) -> np.ndarray:
    return (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]


def apply_jitter(frames: np.ndarray, j: JitterParams) -> np.ndarray:
    """frames: (T, H, W, 3) or (H, W, 3) uint8 RGB -> same shape uint8; brightness, contrast, saturation."""
    if j == JitterParams():
        return frames
    x = frames.astype(np.float32)
    if j.brightness != 1.0:
        x = np.clip(x * j.brightness, 0, 255)
    if j.contrast != 1.0:  # blend with the mean grey level of each frame
        m = _gray(x).mean(axis=(-3, -2, -1), keepdims=True)
        x = np.clip((x - m) * j.contrast + m, 0, 255)
    if j.saturation != 1.0:
        g = _gray(x)
        x = np.clip((x - g) * j.saturation + g, 0, 255)
    return np.rint(x).astype(np.uint8)


_NORM_SCALE = np.array([1.0 / (255.0 * s) for s in CLIP_STD], np.float32)
_NORM_SHIFT = np.array([m / s for m, s in zip(CLIP_MEAN, CLIP_STD)], np.float32)


def normalize_clip(frames: np.ndarray):
    """frames: (T, H, W, 3) uint8 RGB -> torch float32 (T, 3, H, W), CLIP mean/std."""
    import torch

    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    T, H, W, _ = frames.shape
    out = np.empty((T, 3, H, W), np.float32)
    # plane by plane: ~10x faster than a channels-last tensor op + permute on 2 cores
    for t in range(T):
        for c in range(3):
            np.multiply(frames[t, :, :, c], _NORM_SCALE[c], out=out[t, c], dtype=np.float32)
            out[t, c] -= _NORM_SHIFT[c]
    return torch.from_numpy(out)


# ----------------------------------------------------------------------------- presets

@dataclass(frozen=True)
class AugmentPreset:
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    rotate_deg: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    enabled: bool = True      # False: training uses the eval geometry (no augmentation)


# DFER-CLIP's per-dataset train pipelines (reference §5.6, §10.13); test is always eval_geom.
PRESETS: dict[str, AugmentPreset] = {
    "dfew": AugmentPreset(brightness=0.5),   # ColorJitter(0.5) -> random resized crop -> flip
    "ferv39k": AugmentPreset(rotate_deg=4),  # RandomRotation(±4) -> crop -> flip
    "mafw": AugmentPreset(),                 # crop -> flip
    "none": AugmentPreset(enabled=False),
}


def get_preset(name: str | AugmentPreset) -> AugmentPreset:
    if isinstance(name, AugmentPreset):
        return name
    key = str(name).lower()
    if key not in PRESETS:
        raise ValueError(f"unknown augmentation preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[key]


def sample_clip_aug(rng: np.random.Generator, h: int, w: int, preset: AugmentPreset,
                    out_size: int) -> tuple[GeomParams, JitterParams]:
    """Geometry + colour parameters for one training clip under ``preset``."""
    if not preset.enabled:
        return eval_geom(h, w, out_size), JitterParams()
    g = sample_geom(rng, h, w, scale=preset.scale, ratio=preset.ratio, flip_p=preset.flip_p,
                    rotate_deg=preset.rotate_deg, out_size=out_size)
    j = sample_jitter(rng, preset.brightness, preset.contrast, preset.saturation)
    return g, j
