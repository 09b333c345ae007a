"""The facemesh backend (BlazeFace + face mesh on LiteRT) on real faces that ship offline, and its parts."""
import math
import shutil
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from PIL import Image
from skimage import data

from finecliper.face import layout as Lay
from finecliper.face.backend import assign_track_ids, box_iou
from finecliper.face.blazeface import FULL_RANGE, SHORT_RANGE, BlazeFace, ssd_anchor_centres, weighted_nms
from finecliper.face.facemesh import (FaceMeshAnalyser, FaceMeshConfig, Roi, associate, normalize_radians, roi_from_box,
                                      roi_from_landmarks, roi_matrix)
from finecliper.face.models import SHA256, model_path
from finecliper.litert import ModelFileError, load_interpreter

sys.path.insert(0, str(Path(__file__).parent))
from predict_media import two_face_frames  # noqa: E402


@pytest.fixture(scope="module")
def analyser():
    return FaceMeshAnalyser(FaceMeshConfig(parsing_size=0))  # label map at frame size


def _faces():
    grace = np.array(Image.open(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg").convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": grace}


FACES = _faces()


def _centre(lm, idx):
    return lm[list(idx)].mean(0)


# ----------------------------------------------------------------------------- parts, against hand-computed values

def test_ssd_anchors_follow_the_documented_grid():
    a = ssd_anchor_centres(SHORT_RANGE)
    assert a.shape == (896, 2)
    # stride 8: 16 x 16 cells, 2 anchors each; then stride 16 (x3 layers): 8 x 8 cells, 6 anchors each
    assert np.allclose(a[0], a[1]) and np.allclose(a[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(a[2], [1.5 / 16, 0.5 / 16]) and np.allclose(a[511], [15.5 / 16, 15.5 / 16])
    assert np.allclose(a[512:518], [0.5 / 8, 0.5 / 8]) and np.allclose(a[518], [1.5 / 8, 0.5 / 8])
    f = ssd_anchor_centres(FULL_RANGE)
    assert f.shape == (2304, 2) and np.allclose(f[49], [1.5 / 48, 1.5 / 48])


def test_weighted_nms_averages_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    kps = np.zeros((3, 6, 2), np.float32)
    kps[:, 0] = [[2, 2], [4, 4], [55, 55]]
    scores = np.array([0.6, 0.9, 0.7], np.float32)
    out = weighted_nms(boxes, kps, scores)
    assert len(out) == 2 and out.scores.tolist() == pytest.approx([0.9, 0.6 * 0 + 0.7])
    w = np.array([0.9, 0.6]) / 1.5   # the best box first, its overlapping neighbour (IoU 0.68) averaged in
    assert out.boxes[0] == pytest.approx(w[0] * boxes[1] + w[1] * boxes[0])
    assert out.keypoints[0, 0] == pytest.approx(w[0] * kps[1, 0] + w[1] * kps[0, 0])
    assert out.boxes[1] == pytest.approx(boxes[2])
    assert box_iou(boxes[:1], boxes[2:])[0, 0] == 0


def test_roi_rotation_scale_and_crop_matrix():
    # eyes on a line rising to the right by 30 degrees (image y points down)
    p0, p1 = np.array([10.0, 20.0]), np.array([10 + math.cos(math.pi / 6), 20 - math.sin(math.pi / 6)])
    roi = roi_from_box(np.array([0, 0, 40, 20]), p0, p1)
    assert (roi.cx, roi.cy, roi.side) == pytest.approx((20, 10, 60))
    assert roi.angle == pytest.approx(-math.pi / 6)       # the crop turns the face back to level
    m = roi_matrix(roi, 192)
    assert m @ [96, 96, 1] == pytest.approx([20, 10])      # crop centre -> ROI centre
    top_left = m @ [0, 0, 1]
    expect = np.array([20, 10]) + np.array([[math.cos(roi.angle), -math.sin(roi.angle)],
                                            [math.sin(roi.angle), math.cos(roi.angle)]]) @ [-30, -30]
    assert top_left == pytest.approx(expect)
    assert normalize_radians(3 * math.pi) == pytest.approx(-math.pi)


def test_roi_from_landmarks_and_association():
    pts = np.zeros((468, 3), np.float32)
    pts[:, :2] = np.random.default_rng(0).uniform([100, 50], [160, 130], (468, 2))
    pts[33, :2], pts[263, :2] = [110, 80], [150, 80]
    roi = roi_from_landmarks(pts)
    lo, hi = pts[:, :2].min(0), pts[:, :2].max(0)
    assert (roi.cx, roi.cy) == pytest.approx(tuple((lo + hi) / 2)) and roi.side == pytest.approx(1.5 * (hi - lo).max())
    assert roi.angle == pytest.approx(0)
    a, b, c = Roi(50, 50, 40, 0), Roi(52, 51, 40, 0), Roi(200, 50, 40, 0)
    assert associate([a, c], [b]) == [c, b]   # the tracked ROI replaces the detection it overlaps
    assert associate([], [a, b, c]) == [b, c]  # two tracked ROIs on one face become one


def test_vendored_models_are_checked_and_refused_when_altered(tmp_path):
    name = "face_detection_short_range.tflite"
    load_interpreter(model_path(name), sha256=SHA256[name])
    bad = tmp_path / name
    shutil.copy(model_path(name), bad)
    with open(bad, "r+b") as f:
        f.seek(5000)
        f.write(b"\x00" * 16)
    with pytest.raises(ModelFileError, match="sha256.*reinstall"):
        load_interpreter(bad, sha256=SHA256[name])


def test_blazeface_finds_the_real_faces_with_eyes_in_order():
    for model in (0, 1):
        det = BlazeFace(model, 0.5)
        for name, img in FACES.items():
            d = det.detect(img)
            assert len(d) == 1 and d.scores[0] > 0.8, (model, name)
            kp = d.keypoints[0]
            assert d.boxes[0, 0] < kp[0, 0] < kp[1, 0] < d.boxes[0, 2]   # subject's right eye is image-left


# ----------------------------------------------------------------------------- the analyser on real faces

@pytest.mark.parametrize("name", sorted(FACES))
def test_real_face_landmarks_are_plausible(analyser, name):
    img = FACES[name]
    tr = analyser.analyse(img[None], video=False)
    assert tr.valid.tolist() == [True] and tr.reason_names() == ["ok"] and tr.n_faces.tolist() == [1]
    assert tr.confidence[0] > 0.85
    lm = tr.landmarks68[0]
    r_eye, l_eye = _centre(lm, range(36, 42)), _centre(lm, range(42, 48))
    iod = np.linalg.norm(l_eye - r_eye)
    assert 40 < iod < 200
    mouth = _centre(lm, range(48, 60))
    assert _centre(lm, range(17, 27))[1] < r_eye[1] and _centre(lm, range(17, 27))[1] < l_eye[1]
    assert max(r_eye[1], l_eye[1]) < lm[30, 1] < mouth[1] < lm[8, 1]
    assert r_eye[0] < l_eye[0] and _centre(lm, range(17, 22))[0] < _centre(lm, range(22, 27))[0]
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]
    assert (np.diff(lm[17:27, 0]) > 0).all() and (np.diff(lm[27:31, 1]) > 0).all() and (np.diff(lm[31:36, 0]) > 0).all()
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]
    assert lm[[37, 38], 1].max() < lm[[40, 41], 1].min() and lm[[43, 44], 1].max() < lm[[46, 47], 1].min()
    assert lm[48, 0] < lm[51, 0] < lm[54, 0] and lm[51, 1] < lm[62, 1] < lm[57, 1]
    assert (np.diff(lm[0:9, 1]) > 0).all() and (np.diff(lm[8:17, 1]) < 0).all()
    m, e = (r_eye + l_eye) / 2, (l_eye - r_eye) / iod
    partner = lm[Lay.FLIP_68]
    mirror = partner - 2 * ((partner - m) @ e)[:, None] * e
    err = np.linalg.norm(mirror - lm, axis=1) / iod
    assert np.median(err) < 0.05 and err.max() < 0.10


@pytest.mark.parametrize("name", sorted(FACES))
def test_depth_has_mediapipe_sign_and_pixel_scale(analyser, name):
    tr = analyser.analyse(FACES[name][None], video=False)
    z = tr.depth68[0]
    assert z.dtype == np.float32 and np.isfinite(z).all()
    iod = np.linalg.norm(tr.landmarks68[0, 45] - tr.landmarks68[0, 36])
    assert z[30] < z[36] and z[30] < z[45] and z[30] < z[0] and z[30] < z[16]   # nose tip nearest, ears farthest
    assert 0.3 * iod < z[[0, 16]].mean() - z[30] < 2.0 * iod                    # a head's depth, in pixels


@pytest.mark.parametrize("name", sorted(FACES))
def test_real_face_parsing_regions_and_landmarks_agree(analyser, name):
    img = FACES[name]
    tr = analyser.analyse(img[None], video=False)
    lab, lm = tr.parsing[0], tr.landmarks68[0]
    assert lab.shape == img.shape[:2]
    area = np.bincount(lab.ravel(), minlength=11)
    assert area[Lay.SKIN] > area[1:].sum() / 2
    for part in (Lay.LEFT_BROW, Lay.RIGHT_BROW, Lay.LEFT_EYE, Lay.RIGHT_EYE, Lay.NOSE, Lay.UPPER_LIP, Lay.LOWER_LIP):
        assert 0 < area[part] < area[Lay.SKIN] / 5
    assert max(area[Lay.LEFT_EYE], area[Lay.RIGHT_EYE]) < area[Lay.NOSE] and area[Lay.HAIR] == 0

    def label_at(p):
        return lab[int(round(p[1])), int(round(p[0]))]

    assert label_at(_centre(lm, range(36, 42))) == Lay.LEFT_EYE
    assert label_at(_centre(lm, range(42, 48))) == Lay.RIGHT_EYE
    assert label_at(lm[29]) == Lay.NOSE
    assert label_at((lm[51] + lm[62]) / 2) == Lay.UPPER_LIP and label_at((lm[57] + lm[66]) / 2) == Lay.LOWER_LIP
    assert label_at((lm[3] + lm[31]) / 2) == Lay.SKIN


def test_flipped_image_gives_mirrored_landmarks(analyser):
    img = FACES["astronaut"]
    a = analyser.analyse(img[None], video=False)
    b = analyser.analyse(np.ascontiguousarray(img[None, :, ::-1]), video=False)
    mirrored = a.landmarks68[0][Lay.FLIP_68].copy()
    mirrored[:, 0] = (img.shape[1] - 1) - mirrored[:, 0]
    err = np.linalg.norm(b.landmarks68[0] - mirrored, axis=1)
    assert np.median(err) < 2.0 and err.max() < 6.0


def test_frame_without_face_is_invalid_with_nan_depth(analyser):
    noise = np.random.default_rng(0).integers(0, 256, FACES["astronaut"].shape, dtype=np.uint8)
    tr = analyser.analyse(np.stack([noise, FACES["astronaut"]]), video=False)
    assert tr.valid.tolist() == [False, True] and tr.reason_names() == ["no face", "ok"]
    assert tr.parsing[0].max() == 0 and (tr.landmarks68[0] == 0).all() and tr.confidence[0] == 0
    assert np.isnan(tr.depth68[0]).all() and np.isfinite(tr.depth68[1]).all()


def test_video_mode_tracks_without_the_detector(monkeypatch):
    an = FaceMeshAnalyser()
    calls = []
    real = an.detector.detect
    monkeypatch.setattr(an.detector, "detect", lambda f: calls.append(1) or real(f))
    img = FACES["astronaut"]
    shifts = [(0, 0), (3, 2), (6, 4), (9, 6), (12, 8)]
    frames = np.stack([np.roll(img, (dy, dx), axis=(0, 1)) for dx, dy in shifts])
    tr = an.analyse(frames, video=True)
    assert tr.valid.all() and len(calls) == 1                 # detected once, then tracked
    moved = tr.landmarks68 - tr.landmarks68[:1]
    assert np.abs(moved - np.array(shifts, np.float32)[:, None, :]).mean() < 1.0
    an.analyse(frames, video=False)
    assert len(calls) == 1 + len(frames)                      # static mode: every frame
    an.analyse(frames[:2], video=True)                        # a new clip starts afresh
    assert len(calls) == 2 + len(frames)
    calls.clear()
    an.analyse(frames[:2], video=True, reset=False)           # the next chunk of the same clip: still tracked
    assert calls == []


def test_lost_face_is_redetected_in_video_mode():
    an = FaceMeshAnalyser()
    img = FACES["astronaut"]
    blank = np.full_like(img, 128)
    tr = an.analyse(np.stack([img, blank, blank, img, img]), video=True)
    assert tr.valid.tolist() == [True, False, False, True, True]


def test_two_faces_keep_two_ids():
    frames = two_face_frames(12)
    an = FaceMeshAnalyser(FaceMeshConfig(max_faces=2))
    dets = an.detect(frames, video=True)
    assert [len(d) for d in dets] == [2] * 12
    ids = assign_track_ids(dets)
    assert all(t.tolist() == [0, 1] for t in ids)              # largest (astronaut) first, same ids throughout
    one = FaceMeshAnalyser(FaceMeshConfig(max_faces=1)).analyse(frames, video=True)
    assert (one.n_faces == 1).all()
    invalid = FaceMeshAnalyser(FaceMeshConfig(max_faces=2, multiple_faces="invalid")).analyse(frames, video=True)
    assert not invalid.valid.any() and set(invalid.reason_names()) == {"several faces"}


def test_lfw_crops_found_and_non_faces_rejected(analyser):
    imgs = data.lfw_subset()
    pick = np.r_[0:12, 100:112]
    frames = np.stack([cv2.resize(np.repeat((imgs[i] * 255).astype(np.uint8)[:, :, None], 3, 2), (224, 224),
                                  interpolation=cv2.INTER_CUBIC) for i in pick])
    tr = analyser.analyse(frames, video=False)
    assert tr.valid[:12].sum() >= 10 and tr.valid[12:].sum() == 0


@pytest.mark.parametrize("key,value,what", [("min_face_size", 500.0, "size"), ("min_presence", 1.01, "presence"),
                                            ("max_yaw", 0.1, "yaw")])
def test_each_face_rule_reaches_the_analyser(key, value, what):
    img = FACES["astronaut"]
    assert FaceMeshAnalyser(FaceMeshConfig()).analyse(img[None], video=False).valid.all()
    assert not FaceMeshAnalyser(FaceMeshConfig(**{key: value})).analyse(img[None], video=False).valid.any(), what


def test_min_confidence_marks_low_confidence_frames():
    tr = FaceMeshAnalyser(FaceMeshConfig(min_confidence=1.01)).analyse(FACES["astronaut"][None], video=False)
    assert tr.reason_names() == ["low confidence"] and tr.n_faces.tolist() == [1]


def test_max_faces_below_one_is_refused():
    with pytest.raises(ValueError, match="max_faces"):
        FaceMeshAnalyser(FaceMeshConfig(max_faces=0))


def test_raw_footage_detector_falls_back_to_short_range_on_close_faces():
    from finecliper.face.crop import FaceDetector

    g = np.round(data.lfw_subset()[3] * 255).astype(np.uint8)
    close = cv2.resize(np.repeat(g[:, :, None], 3, 2), (112, 112), interpolation=cv2.INTER_CUBIC)  # the face fills it
    assert len(BlazeFace(1, 0.6).detect(close)) == 0          # the full-range model alone misses it
    faces = FaceDetector()(close)
    assert len(faces) == 1 and faces[0].box[2] - faces[0].box[0] > 60
    far = np.full((480, 640, 3), 90, np.uint8)
    far[100:300, 200:400] = cv2.resize(FACES["astronaut"], (200, 200), interpolation=cv2.INTER_AREA)  # a ~40 px face
    assert len(BlazeFace(0, 0.6).detect(far)) == 0            # too small for the short-range model
    faces = FaceDetector()(far)
    assert len(faces) == 1 and 30 < faces[0].box[2] - faces[0].box[0] < 50   # the full-range model's job
