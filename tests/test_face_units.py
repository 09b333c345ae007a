"""Face tables, tracker, rendering, cache files and crop geometry: pure functions, no face model."""
import json

import numpy as np
import pytest

from finecliper.face import layout as Lay
from finecliper.face.backend import (REASON_NO_FACE, FaceDetection, FaceTrack, IoUTracker, assign_track_ids,
                                     box_iou, build_track, concat_tracks, parsing_shape)
from finecliper.face.cache import (FaceCacheError, cache_path, load_face_cache, open_or_create, read_cache_hash,
                                   save_face_cache)
from finecliper.face.crop import CropConfig, CropTrack, crop_frames, crop_matrix, crop_to_frame, pick_main_track, smooth_boxes
from finecliper.face.render import LANDMARK_COLOURS, PARSING_PALETTE, render_landmark_map, render_parsing_map


def test_mesh_polygons_follow_mediapipe_connection_sets():
    pytest.importorskip("mediapipe", reason="mediapipe 0.10.14 (test-only, pip install --no-deps) holds the reference connection sets")
    C = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")

    # closed contours: every step of the polygon is an edge of the package's set
    for poly, edges in [(Lay.FACE_OVAL, C.FACEMESH_FACE_OVAL), (Lay.RIGHT_EYE_POLY, C.FACEMESH_RIGHT_EYE),
                        (Lay.LEFT_EYE_POLY, C.FACEMESH_LEFT_EYE)]:
        es = {frozenset(e) for e in edges}
        steps = {frozenset((poly[i], poly[(i + 1) % len(poly)])) for i in range(len(poly))}
        assert steps == es and len(poly) == len(set(poly)) == len({n for e in edges for n in e})
    # brows: two open chains (upper, lower) joined at both ends -> 2 extra steps
    for poly, edges in [(Lay.RIGHT_BROW_POLY, C.FACEMESH_RIGHT_EYEBROW), (Lay.LEFT_BROW_POLY, C.FACEMESH_LEFT_EYEBROW)]:
        es = {frozenset(e) for e in edges}
        steps = {frozenset((poly[i], poly[(i + 1) % len(poly)])) for i in range(len(poly))}
        assert es <= steps and len(steps - es) == 2 and set(poly) == {n for e in edges for n in e}
    lips = {frozenset(e) for e in C.FACEMESH_LIPS}
    for poly in (Lay.UPPER_LIP_POLY, Lay.LOWER_LIP_POLY, Lay.INNER_MOUTH_POLY):
        steps = {frozenset((poly[i], poly[(i + 1) % len(poly)])) for i in range(len(poly))}
        assert len(steps - lips) == (2 if poly is not Lay.INNER_MOUTH_POLY else 0)
    nose_nodes = {n for e in C.FACEMESH_NOSE for n in e}
    assert {2, 97, 98, 326, 327, 48, 278, 115, 344} <= set(Lay.NOSE_POLY) and 168 in Lay.NOSE_POLY
    assert {97, 2, 326} <= nose_nodes


def test_mesh_to_68_regions_come_from_the_matching_mediapipe_regions():
    pytest.importorskip("mediapipe", reason="mediapipe 0.10.14 (test-only, pip install --no-deps) holds the reference connection sets")
    C = pytest.importorskip("mediapipe.python.solutions.face_mesh_connections")

    nodes = lambda edges: {n for e in edges for n in e}  # noqa: E731
    m = Lay.MESH_TO_68
    assert len(set(m.tolist())) == 68 and m.max() < 468
    assert set(m[0:17]) <= nodes(C.FACEMESH_FACE_OVAL)
    assert set(m[17:22]) <= nodes(C.FACEMESH_RIGHT_EYEBROW)   # iBUG 17-21 = subject's right = mediapipe RIGHT
    assert set(m[22:27]) <= nodes(C.FACEMESH_LEFT_EYEBROW)
    assert set(m[36:42]) <= nodes(C.FACEMESH_RIGHT_EYE)
    assert set(m[42:48]) <= nodes(C.FACEMESH_LEFT_EYE)
    assert set(m[48:68]) <= nodes(C.FACEMESH_LIPS)
    assert set(m[48:60]) <= set(Lay._OUTER_UPPER + Lay._OUTER_LOWER)
    assert set(m[60:68]) <= set(Lay._INNER_UPPER + Lay._INNER_LOWER)
    # jaw walks the face oval monotonically: image-left ear level -> chin (152) -> image-right
    pos = [Lay.FACE_OVAL.index(i) for i in m[0:17]]
    assert m[8] == 152 and all(a > b for a, b in zip(pos, pos[1:]))
    # eye corners: 36/39 and 45/42 are the corners of mediapipe's eye contours
    assert (m[36], m[39], m[42], m[45]) == (33, 133, 362, 263)


def test_flip_tables_are_involutions_that_swap_sides():
    f = Lay.FLIP_68
    assert sorted(f.tolist()) == list(range(68)) and (f[f] == np.arange(68)).all()
    assert f[0] == 16 and f[8] == 8 and f[17] == 26 and f[21] == 22 and f[30] == 30 and f[36] == 45
    assert f[39] == 42 and f[48] == 54 and f[51] == 51 and f[57] == 57 and f[60] == 64 and f[66] == 66
    fixed = set(np.flatnonzero(f == np.arange(68)).tolist())
    assert fixed == {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}
    lut = Lay.PARSING_FLIP_LUT
    assert lut[[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]].tolist() == [0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10]
    assert (lut[lut] == np.arange(256)).all()


def test_box_iou_and_tracker_keep_ids_across_frames():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]])
    assert box_iou(a, b) == pytest.approx(np.array([[50 / 150, 0.0]]))
    tr = IoUTracker(iou_threshold=0.3, max_missed=1)
    assert tr.update(np.array([[0, 0, 10, 10], [50, 50, 60, 60]])).tolist() == [0, 1]
    # listed in the other order, slightly moved: same ids
    assert tr.update(np.array([[51, 50, 61, 60], [1, 0, 11, 10]])).tolist() == [1, 0]
    assert tr.update(np.array([[1, 0, 11, 10]])).tolist() == [0]          # face 1 missed once: kept
    assert tr.update(np.array([[1, 0, 11, 10]])).tolist() == [0]          # missed twice: dropped
    assert tr.update(np.array([[51, 50, 61, 60]])).tolist() == [2]        # comes back as a new track
    det = lambda box: FaceDetection(np.zeros((68, 2), np.float32), np.array(box, np.float32), 0.9)  # noqa: E731
    ids = assign_track_ids([[det([0, 0, 10, 10])], [], [det([0, 0, 10, 10]), det([40, 40, 50, 50])]])
    assert [i.tolist() for i in ids] == [[0], [], [0, 1]]


def test_pick_main_track_prefers_the_large_persistent_face():
    det = lambda box: FaceDetection(np.zeros((68, 2), np.float32), np.array(box, np.float32), 0.9)  # noqa: E731
    big, small = [100, 100, 200, 200], [0, 0, 30, 30]
    frames = [[det(big), det(small)], [det(small)], [det([102, 100, 202, 200]), det(small)]]
    boxes, found = pick_main_track(frames)
    assert found.tolist() == [True, False, True]
    assert boxes[2].tolist() == [102, 100, 202, 200]


def _track(valid, hw=(40, 30)):
    t = len(valid)
    rng = np.random.default_rng(0)
    return FaceTrack(landmarks68=rng.uniform(0, 30, (t, 68, 2)).astype(np.float32),
                     parsing=rng.integers(0, 11, (t, 40, 30)).astype(np.uint8),
                     boxes=rng.uniform(0, 30, (t, 4)).astype(np.float32), valid=np.array(valid),
                     confidence=np.full(t, 0.9, np.float32), n_faces=np.array(valid, np.int16),
                     reasons=np.where(valid, 0, REASON_NO_FACE).astype(np.uint8), frame_hw=hw)


def test_build_track_flags_no_face_several_faces_low_confidence():
    det = lambda box, c: FaceDetection(np.full((68, 2), box[0], np.float32), np.array(box, np.float32), c)  # noqa: E731
    frames = [[], [det([0, 0, 10, 10], 0.9), det([0, 0, 20, 20], 0.8)], [det([0, 0, 10, 10], 0.2)], [det([0, 0, 5, 5], 0.9)]]
    paint = lambda d, hw: np.full(hw, 1, np.uint8)  # noqa: E731
    t = build_track(frames, (100, 50), 20, paint, min_confidence=0.5, multiple_faces="invalid")
    assert t.parsing.shape == (4, 20, 10) and parsing_shape((100, 50), 0) == (100, 50)
    assert t.valid.tolist() == [False, False, False, True]
    assert t.reason_names() == ["no face", "several faces", "low confidence", "ok"]
    assert t.n_faces.tolist() == [0, 2, 1, 1]
    assert t.parsing[:3].max() == 0 and t.parsing[3].min() == 1
    t2 = build_track(frames, (100, 50), 20, paint, multiple_faces="largest")
    assert t2.valid[1] and t2.boxes[1].tolist() == [0, 0, 20, 20] and t2.confidence[1] == pytest.approx(0.8)


def test_render_maps_palette_discs_and_empty_when_invalid():
    labels = np.array([[0, 1], [2, 10]], np.uint8)
    out = render_parsing_map(labels)
    assert out.shape == (2, 2, 3) and out[0, 0].tolist() == [0, 0, 0]
    assert out[1, 1].tolist() == PARSING_PALETTE[10].tolist()
    assert len({tuple(c) for c in PARSING_PALETTE[:11].tolist()}) == 11
    pts = np.full((68, 2), -100.0)
    pts[36:42] = (20, 30)                   # the right eye collapsed onto one point, alone on the canvas
    m = render_landmark_map(pts, 64)
    assert m.shape == (64, 64, 3) and m[30, 20].tolist() == list(LANDMARK_COLOURS["right_eye"])
    ys, xs = np.nonzero(m.any(-1))
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (28, 32, 18, 22)   # disc of radius 2
    assert not render_landmark_map(pts, 64, valid=False).any()
    with pytest.raises(ValueError, match="68, 2"):
        render_landmark_map(np.zeros((5, 2)), 64)


def test_cache_round_trip_and_refusal(tmp_path):
    tr = _track([True, False, True])
    p = cache_path(tmp_path, "Scene/Happy/0001")
    assert p == tmp_path / "Scene" / "Happy" / "0001.npz"
    save_face_cache(p, tr, clip_id="Scene/Happy/0001", extractor_hash="abc")
    back = load_face_cache(p)
    assert np.abs(back.landmarks68 - tr.landmarks68).max() < 0.02  # float16 storage
    assert (back.parsing == tr.parsing).all() and back.valid.tolist() == [True, False, True]
    assert back.frame_hw == (40, 30) and back.meta["clip_id"] == "Scene/Happy/0001"
    assert read_cache_hash(p) == "abc" and read_cache_hash(tmp_path / "none.npz") is None
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(FaceCacheError, match="cannot be used"):
        cache_path(tmp_path, "../x")
    open_or_create(tmp_path, {"backend": "facemesh", "params": {"max_faces": 1}})
    open_or_create(tmp_path, {"backend": "facemesh", "params": {"max_faces": 1}})  # same: accepted
    with pytest.raises(FaceCacheError, match=r"params.max_faces: cache has 1, now 2"):
        open_or_create(tmp_path, {"backend": "facemesh", "params": {"max_faces": 2}})
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(FaceCacheError, match="bad.npz"):
        load_face_cache(tmp_path / "bad.npz")
    assert json.loads((tmp_path / "cache_manifest.json").read_text())["format"] == "finecliper-face-cache"


def test_concat_and_select_keep_frames_in_order():
    a, b = _track([True, False]), _track([True])
    c = concat_tracks([a, b])
    assert len(c) == 3 and (c.landmarks68[2] == b.landmarks68[0]).all()
    s = c.select([2, 0, 0])
    assert (s.parsing[0] == b.parsing[0]).all() and s.valid.tolist() == [True, True, True]


def test_smooth_boxes_fills_gaps_and_keeps_a_steady_box_steady():
    t = 11
    boxes = np.tile(np.array([[40, 20, 80, 60]], np.float32), (t, 1))
    boxes[:, [0, 2]] += np.arange(t)[:, None]          # moving right 1 px/frame
    found = np.ones(t, bool)
    found[4] = False
    boxes[4] = 0                                       # detector missed frame 4
    cfg = CropConfig(margin=0.25, out_size=32, smooth_window=5, smooth_order=2)
    ct = smooth_boxes(boxes, found, (100, 200), cfg)
    # a linear motion is reproduced exactly by a quadratic Savitzky-Golay filter
    assert ct.centres[:, 0] == pytest.approx(60 + np.arange(t), abs=1e-4)
    assert ct.centres[:, 1] == pytest.approx(np.full(t, 40), abs=1e-4)
    assert ct.sides == pytest.approx(np.full(t, 60.0), abs=1e-4)  # 40 * (1 + 2*0.25)
    none = smooth_boxes(boxes, np.zeros(t, bool), (100, 200), cfg)
    assert none.sides[0] == 100 and none.centres[0].tolist() == [99.5, 49.5]


def test_crop_matrix_maps_points_both_ways_and_matches_the_pixels():
    frame = np.zeros((1, 100, 120, 3), np.uint8)
    frame[0, 40, 70] = 255                              # a dot at (x=70, y=40)
    ct = CropTrack(np.array([[60.0, 50.0]], np.float32), np.array([32.0], np.float32), np.ones(1, bool), 32, (100, 120))
    out = crop_frames(frame, ct)
    m = crop_matrix(ct.centres[0], 32.0, 32)
    u, v = m @ np.array([70, 40, 1.0])
    assert (u, v) == pytest.approx((25.5, 5.5))
    ys, xs = np.nonzero(out[0, ..., 0])
    w = out[0, ys, xs, 0].astype(float)
    assert (np.average(xs, weights=w), np.average(ys, weights=w)) == pytest.approx((u, v), abs=0.05)
    assert crop_to_frame(np.array([u, v]), ct, 0) == pytest.approx([70, 40])
