"""Rigid head motion is taken out before measuring: a head that nods, turns and tilts is not a face that moves.

Two 3-D faces: a hand-built one (the 2-D iBUG template on an ellipsoid head with a nose), always there,
and a real one: the face-mesh network finecliper ships (MediaPipe's face_landmark.tflite, run with
LiteRT) on a fixed crop of scikit-image's astronaut photo.
"""
import numpy as np
import pytest

from finecliper.face.layout import MESH_TO_68
from finecliper.face.models import SHA256, model_path
from finecliper.litert import load_interpreter
from finecliper.text.landmark_describer import (
    RIGID_POINTS,
    STILL_TEXT,
    describe_landmarks,
    robust_align,
    similarity_fit,
)
from test_text_landmarks import TEMPLATE

SCALE = 150.0  # px per template unit
NOSE = {27: 0.03, 28: 0.06, 29: 0.10, 30: 0.14, 31: 0.06, 32: 0.07, 33: 0.08, 34: 0.07, 35: 0.06}


def ellipsoid_face() -> np.ndarray:
    """(68, 3) px: the template on an ellipsoid head (z towards the camera is negative), nose and lips forward."""
    u, v = (TEMPLATE[:, 0] - 0.52) / 0.5, (TEMPLATE[:, 1] - 0.55) / 0.75
    z = -0.45 * np.sqrt(np.clip(1 - u ** 2 - v ** 2, 0.0, None))
    for i, forward in NOSE.items():
        z[i] -= forward
    z[48:68] -= 0.03
    return np.column_stack([TEMPLATE, z]) * SCALE


def mediapipe_face() -> np.ndarray:
    """(68, 3) crop px: the vendored MediaPipe face-mesh network on the astronaut's face, iBUG-68 points."""
    from PIL import Image
    from skimage import data

    crop = np.asarray(Image.fromarray(data.astronaut()).convert("RGB"))[30:222, 140:332]  # the face
    net = load_interpreter(model_path("face_landmark.tflite"), sha256=SHA256["face_landmark.tflite"])
    net.set_tensor(net.get_input_details()[0]["index"], (crop.astype(np.float32) / 255.0)[None])
    net.invoke()
    mesh = next(net.get_tensor(d["index"]) for d in net.get_output_details() if d["shape"][-1] == 1404)
    return mesh.reshape(468, 3)[MESH_TO_68].astype(np.float64)


@pytest.fixture(params=["ellipsoid", "mediapipe"], scope="module")
def face3d(request) -> np.ndarray:
    face = ellipsoid_face() if request.param == "ellipsoid" else mediapipe_face()
    return face - face.mean(0)


def iod(face: np.ndarray) -> float:
    return float(np.linalg.norm(face[[42, 45]].mean(0) - face[[36, 39]].mean(0)))


def rotation(pitch_back: float, yaw_left: float, roll_left: float) -> np.ndarray:
    """Camera axes (x right, y down, z away from the camera), degrees, named by their effect on the face:
    pitch_back turns the nose up, yaw_left turns it to the subject's left (image right), roll_left lowers
    the subject's left eye (image right)."""
    p, y, r = np.radians([pitch_back, yaw_left, roll_left])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])  # nose (0,0,-1) -> up
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])  # nose -> +x
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])  # +x axis -> +y
    return rz @ ry @ rx


def test_rotation_helper_moves_the_nose_as_named():
    nose = np.array([0.0, 0.0, -1.0])
    assert (rotation(30, 0, 0) @ nose)[1] < -0.4  # up
    assert (rotation(0, 30, 0) @ nose)[0] > 0.4  # towards the image right = the subject's left
    assert (rotation(0, 0, 30) @ np.array([1.0, 0, 0]))[1] > 0.4  # image-right eye goes down


def head_motion_clip(face, T=50, pitch=25.0, yaw=30.0, roll=20.0, noise=0.004, seed=0, expression=None):
    """A clip (landmarks (T,68,2), depth (T,68)) of ``face`` turning from frontal to (pitch, yaw, roll)
    over frames 10-40, moving 30 px and growing 15 %; ``expression(t)`` gives a (68,3) face-frame
    displacement in IOD units for frame t."""
    rng = np.random.default_rng(seed)
    unit = iod(face)
    frames = []
    for t in range(T):
        a = float(np.clip((t - 10) / 30, 0, 1))
        shape = face + (0 if expression is None else expression(t) * unit)
        pts = (1 + 0.15 * a) * shape @ rotation(a * pitch, a * yaw, a * roll).T + np.array([250, 200, 0]) + \
            a * np.array([30.0, -15.0, 5.0])
        frames.append(pts + rng.normal(0, noise * unit, pts.shape))
    pts = np.stack(frames)
    return pts[..., :2], pts[..., 2]


def open_lips(t):
    d = np.zeros((68, 3))
    if 20 <= t < 50:
        d[[55, 56, 57, 58, 59, 65, 66, 67], 1] = 0.15  # lower lip down 0.15 IOD, the jaw stays
    return d


HEAD_NAMES = {"head_tilt_back", "head_turn_left", "head_tilt_left"}


def test_rigid_head_motion_of_a_still_face_is_no_facial_movement(face3d):
    landmarks, depth = head_motion_clip(face3d)
    desc = describe_landmarks(landmarks, depth=depth, fps=25.0)
    assert desc.alignment == "3d"
    assert desc.text == STILL_TEXT and desc.motions == []
    assert {m.name for m in desc.head_motions} == HEAD_NAMES
    text = desc.head_text  # one sentence; the order of the clauses follows their onsets
    assert text.startswith("The head turns to the subject's left, ") and text.endswith(" in the second half of the clip.")
    assert "tilts back slightly" in text and "tilts slightly to the subject's left" in text and text.count("head") == 1
    # without depth the same clip reads as facial movement: the reason for depth68
    flat = describe_landmarks(landmarks, fps=25.0)
    assert flat.alignment == "2d" and flat.text != STILL_TEXT


def test_other_directions_are_named_too(face3d):
    landmarks, depth = head_motion_clip(face3d, pitch=-25.0, yaw=-30.0, roll=-20.0, seed=1)
    desc = describe_landmarks(landmarks, depth=depth, fps=25.0)
    assert desc.text == STILL_TEXT
    assert {m.name for m in desc.head_motions} == {"head_tilt_forward", "head_turn_right", "head_tilt_right"}


def test_mouth_opening_under_head_motion_is_only_the_mouth(face3d):
    landmarks, depth = head_motion_clip(face3d, expression=open_lips, seed=2)
    desc = describe_landmarks(landmarks, depth=depth, fps=25.0)
    assert [m.name for m in desc.motions] == ["mouth_open"]
    (m,) = desc.motions
    assert abs(m.onset_frame - 20) <= 1 and m.offset_frame == 49
    assert m.magnitude == pytest.approx(0.15, abs=0.02)
    assert desc.text == "The mouth opens in the second half of the clip."
    assert {m.name for m in desc.head_motions} == HEAD_NAMES


def test_no_depth_falls_back_to_2d(face3d):
    landmarks, depth = head_motion_clip(face3d, pitch=0.0, yaw=0.0, roll=40.0, expression=open_lips, seed=3)
    valid = np.ones(len(landmarks), bool)
    valid[5] = False
    depth[5] = np.nan  # no face there: its missing depth does not matter
    assert describe_landmarks(landmarks, valid, depth=depth, fps=25.0).alignment == "3d"
    depth[:] = np.nan  # a backend without depth (FaceXFormer)
    for d in (depth, None):
        desc = describe_landmarks(landmarks, valid, depth=d, fps=25.0)
        assert desc.alignment == "2d"
        assert desc.text == "The mouth opens in the second half of the clip."  # in-plane roll cancels in 2-D
        assert [m.name for m in desc.head_motions] == ["head_tilt_left"]  # roll is seen in 2-D too


def test_similarity_fit_recovers_a_known_transform_and_ignores_outliers(face3d):
    rot = rotation(20, -35, 10)
    src = np.stack([face3d, face3d @ rotation(-5, 10, 3).T])  # two frames
    dst = 1.3 * src[0] @ rot.T + np.array([5.0, -7.0, 2.0])
    s, r, t = similarity_fit(src[:1], dst, np.ones((1, 68)))
    assert s[0] == pytest.approx(1.3) and np.allclose(r[0], rot) and np.allclose(t[0], [5, -7, 2])
    # robust: two rigid points pulled 0.3 eye distances away leave the other points where they were
    moved = src.copy()
    moved[:, [16, 28]] += 0.3 * iod(face3d) * np.array([[0.6, -0.8, 0.0], [0.0, 0.6, 0.8]])
    aligned, _ = robust_align(moved, dst, iterations=6)
    clean, _ = robust_align(src, dst, iterations=6)
    keep = [i for i in range(68) if i not in (16, 28)]
    assert np.abs(aligned[:, keep] - clean[:, keep]).max() < 0.01 * iod(face3d)
    assert np.allclose(clean[0], dst, atol=1e-6 * iod(face3d))
    plain, _ = robust_align(moved, dst, iterations=1)  # one unweighted fit: pulled off by the two points
    assert np.abs(plain[:, keep] - clean[:, keep]).max() > 0.03 * iod(face3d)
