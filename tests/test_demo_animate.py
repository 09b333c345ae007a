"""The demo's face animation: exact warps, recipe displacements, and clips whose landmarks move as their label says."""
import dataclasses

import cv2
import numpy as np
import pytest
from scipy.interpolate import LinearNDInterpolator

from finecliper.demo.animate import (EXPRESSIONS, RECIPES, TriangleWarp, activation, animate, border_points,
                                     expression_field, face_geometry, frame_maps, sample_clip_params)
from finecliper.face.layout import MESH_TO_68
from finecliper.text.landmark_describer import measure_signals


@pytest.fixture(scope="module")
def faces():
    from finecliper.demo.faces import load_faces

    found, skipped = load_faces(3, 224)  # astronaut, grace_hopper, lfw_000
    assert [f.name for f in found] == ["astronaut", "grace_hopper", "lfw_000"] and skipped == []
    return found


def still(p, **kw):
    """No pose, lighting, release: the clip's only change is the expression."""
    return dataclasses.replace(p, rotation=(0.0, 0.0), scale=(1.0, 1.0), shift=((0.0, 0.0), (0.0, 0.0)), contrast=1.0,
                               brightness=0.0, release=0.0, **kw)


def test_warp_without_expression_is_exactly_the_pose():
    rng = np.random.default_rng(0)
    mesh = rng.uniform(30, 80, (478, 2))
    pose = cv2.getRotationMatrix2D((55.5, 55.5), 7.0, 1.05)
    pose[:, 2] += [3.0, -2.0]
    mx, my = frame_maps(mesh, mesh, pose, 112)
    inv = cv2.invertAffineTransform(pose)
    ys, xs = np.mgrid[0:112, 0:112].astype(np.float64)
    assert np.abs(mx - (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2])).max() < 1e-4
    assert np.abs(my - (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2])).max() < 1e-4


def test_triangle_warp_is_the_piecewise_linear_map_of_its_triangles():
    import matplotlib.tri as mtri

    rng = np.random.default_rng(1)
    size = 64
    src = np.concatenate([rng.uniform(12, 52, (150, 2)), border_points(size)])
    warp = TriangleWarp(size)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    grid = np.stack([xs.ravel(), ys.ravel()], 1)
    for step in range(3):  # later frames keep the triangles and start the walk from the last frame's
        dst = src.copy()
        dst[:150] += 0.8 * step * np.sin(src[:150] / 9.0)  # smooth motion, up to ~1.6 px
        mx, my = warp.maps(src, dst)
        if step == 0:  # a fresh Delaunay: scipy's interpolator is the oracle
            ref = LinearNDInterpolator(dst, src)(grid)
        else:  # the same triangles, matplotlib's point location and interpolation
            tri = mtri.Triangulation(dst[:, 0], dst[:, 1], warp.tri)
            ref = np.stack([np.asarray(mtri.LinearTriInterpolator(tri, src[:, i])(grid[:, 0], grid[:, 1]).filled(np.nan))
                            for i in (0, 1)], 1)
        assert np.isfinite(ref).all()
        assert np.abs(ref[:, 0] - mx.ravel()).max() < 1e-3
        assert np.abs(ref[:, 1] - my.ravel()).max() < 1e-3
    assert warp.triangulations < 3  # reused at least once


def test_recipe_moves_its_anchors_by_the_stated_amplitude(faces):
    g = face_geometry(faces[0].mesh)
    d = expression_field(g, "happiness", intensity=1.0)  # IOD units, face frame (y down)
    up = dict(RECIPES["happiness"])["lip_corners_up"]
    out = dict(RECIPES["happiness"])["lip_corners_out"]
    for corner, side in ((61, -1), (291, +1)):  # mouth corners: full share of the lip-corner action
        assert d[corner, 1] == pytest.approx(-up, abs=1e-9)
        assert d[corner, 0] == pytest.approx(side * out, abs=1e-9)
    brow = g.regions["brow_image_left"]
    assert np.abs(d[brow]).max() == 0.0  # features no action moves stay exactly put
    sad = expression_field(g, "sadness", intensity=2.0)
    assert (sad[[61, 291], 1] > 0).all()  # corners go down (+y), twice the recipe at intensity 2
    assert sad[61, 1] == pytest.approx(-2 * dict(RECIPES["sadness"])["lip_corners_up"])
    neutral = expression_field(g, "neutral", rng=np.random.default_rng(3))
    assert np.abs(neutral).max() < 0.03  # drift only: below every describer threshold (>= 0.02 IOD... in signal)


def test_activation_rests_until_onset_and_reaches_the_apex():
    p = sample_clip_params("surprise", 16, np.random.default_rng(5))
    p = dataclasses.replace(p, release=0.0)
    a = activation(p)
    assert a.shape == (16,) and (a[: p.onset + 1] == 0).all()
    assert (a[p.apex:] == 1).all() and (np.diff(a) >= 0).all()
    with pytest.raises(ValueError, match="unknown expression"):
        sample_clip_params("boredom", 16, np.random.default_rng(0))


def _signal_change(landmarks68: np.ndarray) -> dict[str, float]:
    s = measure_signals(landmarks68)
    return {k: float(v[-1] - v[0]) for k, v in s.items()}


def test_true_landmarks_carry_the_motion_of_the_label(faces):
    """The exact moved mesh (pose and all), measured like the describer measures: eye-aligned, IOD units."""
    for face in faces:
        ch = {}
        for e in EXPRESSIONS:
            p = sample_clip_params(e, 16, np.random.default_rng([7, EXPRESSIONS.index(e)]))
            p = dataclasses.replace(p, intensity=1.0, release=0.0)  # keep the random pose and lighting
            _, pts = animate(face.image, face.mesh, p, 112, return_points=True)
            ch[e] = _signal_change(pts[:, MESH_TO_68])
        assert ch["happiness"]["lip_corner_height"] > 0.08 and ch["happiness"]["mouth_width"] > 0.1
        assert ch["sadness"]["lip_corner_height"] < -0.06 and ch["sadness"]["inner_brow_height"] > 0.07
        assert ch["surprise"]["inner_brow_height"] > 0.07 and ch["surprise"]["outer_brow_height"] > 0.07
        assert ch["surprise"]["mouth_opening"] > 0.12 and ch["surprise"]["eye_opening"] > 0.02
        assert ch["anger"]["inner_brow_height"] < -0.08 and ch["anger"]["brow_gap"] < -0.1
        assert ch["disgust"]["nose_height"] > 0.04 and ch["disgust"]["nose_to_lip"] < -0.03
        assert ch["fear"]["mouth_width"] > 0.15 and ch["fear"]["inner_brow_height"] > 0.07
        assert max(abs(v) for v in ch["neutral"].values()) < 0.03


def test_rendered_frames_carry_the_motion_when_facemesh_redetects_them(faces):
    """The pixels, not only the points: FaceMesh on the rendered frames sees the label's motion."""
    from finecliper.face.facemesh import FaceMeshAnalyser

    analyser = FaceMeshAnalyser()
    try:
        for face in faces[:2]:
            ch = {}
            for e in ("happiness", "sadness", "surprise", "neutral"):
                p = still(sample_clip_params(e, 12, np.random.default_rng([11, EXPRESSIONS.index(e)])), intensity=1.0)
                frames = animate(face.image, face.mesh, p, 112)
                assert frames.shape == (12, 112, 112, 3) and frames.dtype == np.uint8
                track = analyser.analyse(frames, video=True)
                assert track.valid.all(), f"{face.name} {e}: FaceMesh lost the face"
                ch[e] = _signal_change(track.landmarks68)
            # the plain 468-point mesh follows brows and lip corners about half as far as MediaPipe's
            # attention mesh did (grace_hopper: sadness lip corners -0.02 IOD instead of -0.06, surprise
            # inner brows 0.03 instead of 0.07), hence these margins
            assert ch["happiness"]["lip_corner_height"] > 0.03 > -0.015 > ch["sadness"]["lip_corner_height"]
            assert ch["sadness"]["inner_brow_height"] > 0.02
            assert ch["surprise"]["inner_brow_height"] > 0.02 and ch["surprise"]["mouth_opening"] > 0.04
            assert ch["surprise"]["chin_drop"] > 0.1
            assert abs(ch["neutral"]["lip_corner_height"]) < 0.03 and abs(ch["neutral"]["inner_brow_height"]) < 0.035
    finally:
        analyser.close()


def test_bad_inputs_are_refused(faces):
    with pytest.raises(ValueError, match="square"):
        animate(np.zeros((10, 12, 3), np.uint8), faces[0].mesh, sample_clip_params("fear", 8, np.random.default_rng(0)))
    with pytest.raises(ValueError, match="478"):
        face_geometry(np.zeros((68, 2)))
