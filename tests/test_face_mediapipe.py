"""The MediaPipe backend on real faces that ship offline (skimage astronaut, matplotlib grace_hopper)."""
import matplotlib
import numpy as np
import pytest
from PIL import Image
from skimage import data

from finecliper.face import layout as Lay
from finecliper.face.mediapipe_backend import MediapipeConfig, MediapipeFaceAnalyser

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def analyser():
    a = MediapipeFaceAnalyser(MediapipeConfig(parsing_size=0))  # label map at frame size
    yield a
    a.close()


def _faces():
    grace = np.array(Image.open(f"{matplotlib.get_data_path()}/sample_data/grace_hopper.jpg").convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": grace}


FACES = _faces()


def _centre(lm, idx):
    return lm[list(idx)].mean(0)


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
    # vertical order: brows above eyes above nose tip above mouth above chin
    assert _centre(lm, range(17, 27))[1] < r_eye[1] and _centre(lm, range(17, 27))[1] < l_eye[1]
    assert max(r_eye[1], l_eye[1]) < lm[30, 1] < mouth[1] < lm[8, 1]
    # image-left / image-right: iBUG 17-21 and 36-41 are the subject's right = image-left
    assert r_eye[0] < l_eye[0] and _centre(lm, range(17, 22))[0] < _centre(lm, range(22, 27))[0]
    assert lm[0, 0] < lm[8, 0] < lm[16, 0]
    # order inside each region
    assert (np.diff(lm[17:27, 0]) > 0).all()                     # brows left to right
    assert (np.diff(lm[27:31, 1]) > 0).all()                     # nose bridge top to tip
    assert (np.diff(lm[31:36, 0]) > 0).all()                     # lower nose left to right
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]         # eye corners
    assert lm[[37, 38], 1].max() < lm[[40, 41], 1].min() and lm[[43, 44], 1].max() < lm[[46, 47], 1].min()
    assert lm[48, 0] < lm[51, 0] < lm[54, 0] and lm[51, 1] < lm[62, 1] < lm[57, 1]
    assert lm[62, 1] <= lm[66, 1] + 0.5 and lm[66, 1] < lm[57, 1]   # closed mouth: inner lips meet
    assert (np.diff(lm[0:9, 1]) > 0).all() and (np.diff(lm[8:17, 1]) < 0).all()  # jaw down to the chin, up again
    # left/right symmetry: mirror partners reflected across the perpendicular bisector of the eyes
    m, e = (r_eye + l_eye) / 2, (l_eye - r_eye) / iod
    partner = lm[Lay.FLIP_68]
    mirror = partner - 2 * ((partner - m) @ e)[:, None] * e
    err = np.linalg.norm(mirror - lm, axis=1) / iod
    assert np.median(err) < 0.05 and err.max() < 0.10   # measured 1-2 % / 3 %


@pytest.mark.parametrize("name", sorted(FACES))
def test_real_face_parsing_regions_and_landmarks_agree(analyser, name):
    img = FACES[name]
    tr = analyser.analyse(img[None], video=False)
    lab, lm = tr.parsing[0], tr.landmarks68[0]
    assert lab.shape == img.shape[:2]
    area = np.bincount(lab.ravel(), minlength=11)
    assert area[Lay.SKIN] > area[1:].sum() / 2                       # skin is the largest region
    for part in (Lay.LEFT_BROW, Lay.RIGHT_BROW, Lay.LEFT_EYE, Lay.RIGHT_EYE, Lay.NOSE, Lay.UPPER_LIP, Lay.LOWER_LIP):
        assert area[part] > 0
        assert area[part] < area[Lay.SKIN] / 5
    assert max(area[Lay.LEFT_EYE], area[Lay.RIGHT_EYE]) < area[Lay.NOSE]
    assert 0.5 < area[Lay.LEFT_EYE] / area[Lay.RIGHT_EYE] < 2 and 0.5 < area[Lay.LEFT_BROW] / area[Lay.RIGHT_BROW] < 2
    assert area[Lay.HAIR] == 0                                       # the mesh has no hair region

    def label_at(p):
        return lab[int(round(p[1])), int(round(p[0]))]

    assert label_at(_centre(lm, range(36, 42))) == Lay.LEFT_EYE      # LaPa "left" = image-left
    assert label_at(_centre(lm, range(42, 48))) == Lay.RIGHT_EYE
    assert label_at(lm[29]) == Lay.NOSE
    assert label_at((lm[51] + lm[62]) / 2) == Lay.UPPER_LIP
    assert label_at((lm[57] + lm[66]) / 2) == Lay.LOWER_LIP
    assert label_at((lm[3] + lm[31]) / 2) == Lay.SKIN                # cheek
    # each brow's label centroid sits by its iBUG points
    iod = np.linalg.norm(_centre(lm, range(42, 48)) - _centre(lm, range(36, 42)))
    for label, idx in ((Lay.LEFT_BROW, range(17, 22)), (Lay.RIGHT_BROW, range(22, 27))):
        ys, xs = np.nonzero(lab == label)
        assert np.linalg.norm(np.array([xs.mean(), ys.mean()]) - _centre(lm, idx)) < 0.15 * iod


def test_flipped_image_gives_mirrored_landmarks_and_swapped_parsing(analyser):
    img = FACES["astronaut"]
    a = analyser.analyse(img[None], video=False)
    b = analyser.analyse(np.ascontiguousarray(img[None, :, ::-1]), video=False)
    w = img.shape[1]
    mirrored = a.landmarks68[0][Lay.FLIP_68].copy()
    mirrored[:, 0] = (w - 1) - mirrored[:, 0]                       # pixel-centre mirror
    err = np.linalg.norm(b.landmarks68[0] - mirrored, axis=1)
    assert np.median(err) < 2.0 and err.max() < 6.0                 # px, on a ~95 px wide face
    flipped = a.parsing[0][:, ::-1]
    swapped = Lay.PARSING_FLIP_LUT[flipped]
    iou = lambda x, y: (x & y).sum() / (x | y).sum()  # noqa: E731
    got = b.parsing[0]
    assert iou(swapped == Lay.NOSE, got == Lay.NOSE) > 0.7 and iou(swapped == Lay.SKIN, got == Lay.SKIN) > 0.9
    for part in (Lay.LEFT_EYE, Lay.RIGHT_EYE, Lay.LEFT_BROW, Lay.RIGHT_BROW):  # small parts (~30 px)
        assert iou(swapped == part, got == part) > 0.3
        assert iou(flipped == part, got == part) == 0  # without the id swap they land on the wrong side


def test_frame_without_face_is_invalid_with_reason_no_face(analyser):
    cam = np.repeat(data.camera()[:, :, None], 3, axis=2)
    tr = analyser.analyse(np.stack([cam, FACES["astronaut"]]), video=False)
    assert tr.valid.tolist() == [False, True]
    assert tr.reason_names() == ["no face", "ok"] and tr.n_faces.tolist() == [0, 1]
    assert tr.parsing[0].max() == 0 and (tr.landmarks68[0] == 0).all() and tr.confidence[0] == 0


def test_video_mode_tracks_a_moving_face_and_carries_confidence(analyser):
    img = FACES["astronaut"]
    shifts = [(0, 0), (3, 2), (6, 4), (9, 6), (12, 8)]
    frames = np.stack([np.roll(img, (dy, dx), axis=(0, 1)) for dx, dy in shifts])
    tr = analyser.analyse(frames, video=True)
    assert tr.valid.all() and (tr.confidence > 0.85).all()
    moved = tr.landmarks68 - tr.landmarks68[:1]
    expect = np.array(shifts, np.float32)[:, None, :]
    assert np.abs(moved - expect).mean() < 1.0
    # a new clip starts afresh: the same frames in reverse give the same landmarks per frame
    back = analyser.analyse(frames[::-1].copy(), video=True)
    assert np.abs(back.landmarks68[::-1] - tr.landmarks68).mean() < 1.0


def test_lfw_crops_found_and_non_faces_rejected(analyser):
    import cv2

    imgs = data.lfw_subset()                     # 200 grayscale 25x25: first 100 faces, then 100 non-faces
    pick = np.r_[0:12, 100:112]
    frames = np.stack([cv2.resize(np.repeat((imgs[i] * 255).astype(np.uint8)[:, :, None], 3, 2), (224, 224),
                                  interpolation=cv2.INTER_CUBIC) for i in pick])
    tr = analyser.analyse(frames, video=False)
    assert tr.valid[:12].sum() >= 10 and tr.valid[12:].sum() == 0
