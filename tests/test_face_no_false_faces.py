"""No face where there is none: noise, printed text, textures and skimage `camera` give no face and no track.

`camera` (the cameraman) shows a real head in profile, one eye behind the camera: the mesh places it at
~48-50 degrees of yaw, past the ``max_yaw`` rule (40; upscaled LFW faces reach 33 at most); with the
rule off it is found, which proves the rule does the rejecting.
"""
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from finecliper.face.crop import FaceDetector
from finecliper.face.extract import ExtractConfig, extract_clip
from finecliper.face.facemesh import FaceMeshAnalyser, FaceMeshConfig
from finecliper.predict.video import face_tracks, scan_video

sys.path.insert(0, str(Path(__file__).parent))
from predict_media import write_video  # noqa: E402


def sky(h: int = 360, w: int = 640) -> np.ndarray:
    top, bottom = np.array([40, 90, 200], np.float32), np.array([190, 220, 250], np.float32)
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top + (bottom - top) * y, (h, w, 3)).astype(np.uint8).copy()


def title(text: str, scale: float, blur: float = 0.0, dx: int = 0) -> np.ndarray:
    img = sky()
    cv2.putText(img, text, (30 + dx, 220), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 8, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), blur) if blur else img


def gray3(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(img[:, :, None], 3, 2)) if img.ndim == 2 else np.ascontiguousarray(img[..., :3])


def negatives() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {"noise": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
           "noise_blurred": cv2.GaussianBlur(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8), (0, 0), 3)}
    for text, scale in (("HELLO", 3), ("Summer 2024", 2), ("OOO", 4), ("o_o", 5), ("B8", 6), (":-)", 6)):
        out[f"text {text}"] = title(text, scale)
        out[f"blurred text {text}"] = title(text, scale, blur=6)
    for name in ("brick", "grass", "gravel", "camera"):
        out[name] = gray3(getattr(data, name)())
    return out


NEGATIVES = negatives()


@pytest.fixture(scope="module")
def analyser():
    return FaceMeshAnalyser(FaceMeshConfig())


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()   # raw footage / predict: full range, confirmed by the mesh


@pytest.mark.parametrize("name", sorted(NEGATIVES))
def test_no_face_in_static_images(analyser, detector, name):
    img = NEGATIVES[name]
    assert analyser.detect(img[None], video=False) == [[]]
    assert detector(img) == []
    small = cv2.resize(img, (112, 112), interpolation=cv2.INTER_AREA)   # as a DFER-size crop
    assert analyser.detect(small[None], video=False) == [[]]


def test_camera_is_rejected_by_the_yaw_rule_only():
    cam = NEGATIVES["camera"]
    assert FaceMeshAnalyser(FaceMeshConfig(max_yaw=90)).detect(cam[None], video=False)[0]   # the profile head
    assert FaceMeshAnalyser(FaceMeshConfig()).detect(cam[None], video=False) == [[]]


@pytest.fixture(scope="module")
def title_video(tmp_path_factory):
    """2 s of sky with a blurry title drifting across (what a new user tried)."""
    frames = np.stack([title("My Holiday", 2.5, blur=4 + (k % 5), dx=2 * k) for k in range(20)])
    return write_video(tmp_path_factory.mktemp("sky") / "sky_title.mp4", frames, fps=10)


def test_sky_title_video_gives_no_face_track(title_video, analyser, detector):
    track, _ = extract_clip(title_video, analyser, ExtractConfig(chunk=8))
    assert len(track) == 20 and not track.valid.any() and (track.n_faces == 0).all()
    raw, crop = extract_clip(title_video, analyser, ExtractConfig(raw=True, chunk=8), detector)
    assert not raw.valid.any() and not crop["crop_found"].any()
    scan = scan_video(title_video, detector)
    assert scan.info.num_frames == 20 and all(d == [] for d in scan.detections)
    assert face_tracks(scan.detections, scan.info.times, all_faces=True) == ([], 0)
