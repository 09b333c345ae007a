"""Real face photos that ship inside installed packages, cropped like DFEW frames, with their face mesh.

Sources (no download, no network): scikit-image ``data.astronaut()`` (512×512 colour), matplotlib's
``sample_data/grace_hopper.jpg`` (600×512 colour), scikit-image ``data.lfw_subset()`` (200 grayscale
25×25 crops; the first 100 are faces, the rest are not). Each photo becomes one *identity* of the demo
dataset: a square face crop of ``size`` pixels (the large photos around the detected face, the LFW crops
upscaled whole) and its face mesh, detected once (``facemesh``: 468 points, plus 10 iris points placed
at the eye centres, since the animation pins irises and MediaPipe's iris model is not shipped). Photos
where the mesh finds no face are skipped and reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from finecliper.face import layout
from finecliper.face.facemesh import FaceMeshAnalyser

LFW_FACES = 100  # data.lfw_subset(): images 0..99 are faces, 100..199 are not
CROP_MARGIN = 1.5  # side of the square crop / larger side of the mesh box (DFEW crops are tight)


@dataclass
class Photo:
    name: str  # "astronaut", "grace_hopper", "lfw_000" ...
    image: np.ndarray  # (H, W, 3) uint8 RGB
    source: str  # where it ships


@dataclass
class DemoFace:
    """One identity: a face crop and its mesh (pixel-centre coordinates of ``image``)."""

    name: str
    image: np.ndarray  # (S, S, 3) uint8 RGB
    mesh: np.ndarray  # (478, 2) float32: 468 mesh points + 10 approximate iris points
    source: str


def grace_hopper_path() -> Path:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: matplotlib's sample photo is missing; reinstall matplotlib")
    return path


def iter_photos(n_lfw: int = LFW_FACES) -> Iterator[Photo]:
    """astronaut, grace_hopper, then the first ``n_lfw`` LFW faces (grayscale → 3 channels)."""
    from PIL import Image
    from skimage import data

    yield Photo("astronaut", np.ascontiguousarray(data.astronaut()), "skimage.data.astronaut")
    path = grace_hopper_path()
    yield Photo("grace_hopper", np.asarray(Image.open(path).convert("RGB")), str(path.name))
    if n_lfw > 0:
        lfw = data.lfw_subset()  # (200, 25, 25) float64 in [0, 1]
        for i in range(min(n_lfw, LFW_FACES)):
            gray = np.round(lfw[i] * 255).astype(np.uint8)
            yield Photo(f"lfw_{i:03d}", np.repeat(gray[:, :, None], 3, axis=2), f"skimage.data.lfw_subset[{i}]")


def square_crop(image: np.ndarray, centre: tuple[float, float], side: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``side``-pixel square around ``centre`` resized to ``size`` (edges replicated where it leaves the image).

    Returns (crop (size, size, 3) uint8, A (2, 3)) where A maps image pixels to crop pixels (pixel centres).
    """
    s = size / side
    cx, cy = centre
    # pixel-centre convention: crop pixel (u + 0.5) = s * (x + 0.5 - (cx - side / 2))
    A = np.array([[s, 0.0, s * (0.5 - cx + side / 2) - 0.5], [0.0, s, s * (0.5 - cy + side / 2) - 0.5]])
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    crop = cv2.warpAffine(image, A, (size, size), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return crop, A


def with_irises(points: np.ndarray) -> np.ndarray:
    """(468, 2) mesh → (478, 2): per eye (subject's right first, MediaPipe's order) its centre and four
    points around it, a fifth of the eye's width away (less vertically, to stay inside the lids)."""
    out = [np.asarray(points[:468], np.float32)]
    for poly, (outer, inner) in ((layout.RIGHT_EYE_POLY, (33, 133)), (layout.LEFT_EYE_POLY, (263, 362))):
        eye = points[list(poly)]
        centre = eye.mean(0)
        r = 0.2 * float(np.linalg.norm(points[outer] - points[inner]))
        ry = min(r, 0.45 * float(eye[:, 1].max() - eye[:, 1].min()))
        out.append(centre + np.array([[0, 0], [r, 0], [0, -ry], [-r, 0], [0, ry]], np.float32))
    return np.concatenate(out).astype(np.float32)


def face_crop(photo: Photo, analyser, size: int) -> DemoFace | None:
    """The photo cropped to its face (or upscaled whole when it is already a face crop) + the mesh; None if no face."""
    img = photo.image
    h, w = img.shape[:2]
    if max(h, w) <= 64:  # LFW: already a tight crop; upscale, then detect on the upscaled image
        crop = cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        faces = analyser.detect(img[None], video=False)[0]
        if not faces:
            return None
        pts = faces[0].points[:468]
        lo, hi = pts.min(0), pts.max(0)
        crop, _ = square_crop(img, tuple((lo + hi) / 2), CROP_MARGIN * float((hi - lo).max()), size)
    faces = analyser.detect(crop[None], video=False)[0]
    if not faces:
        return None
    return DemoFace(photo.name, crop, with_irises(faces[0].points), photo.source)


def load_faces(n: int | None = None, size: int = 224, analyser=None) -> tuple[list[DemoFace], list[str]]:
    """Up to ``n`` identities (all 2 + 100 photos when None) as (faces, names of photos skipped: no face found).

    ``analyser``: a ``FaceMeshAnalyser`` (one is made when None).
    """
    if n is not None and n < 1:
        raise ValueError(f"need at least one identity, asked for {n}")
    own = analyser is None
    if own:
        analyser = FaceMeshAnalyser()
    faces: list[DemoFace] = []
    skipped: list[str] = []
    try:
        for photo in iter_photos():
            if n is not None and len(faces) >= n:
                break
            face = face_crop(photo, analyser, size)
            if face is None:
                skipped.append(photo.name)
            else:
                faces.append(face)
    finally:
        if own:
            analyser.close()
    return faces, skipped
