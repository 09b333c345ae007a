import numpy as np
import pytest
import torch

from finecliper.data import augment as A


def _geoms(rotate):
    rng = np.random.default_rng(11)
    for _ in range(25):
        h, w = int(rng.integers(20, 70)), int(rng.integers(20, 70))
        yield A.sample_geom(rng, h, w, scale=(0.2, 1.0), flip_p=0.5, rotate_deg=rotate,
                            out_size=int(rng.integers(16, 80)))


def _inverse(M):
    full = np.vstack([M, [0, 0, 1]])
    return np.linalg.inv(full)[:2]


@pytest.mark.parametrize("rotate", [0.0, 15.0])
def test_nearest_output_pixel_comes_from_the_source_pixel_apply_points_maps_there(rotate):
    """Pixel-centre convention: output pixel (u, v) samples source round(M^-1 (u, v)), the same
    matrix apply_points uses forward."""
    for p in _geoms(rotate):
        yy, xx = np.mgrid[0:p.src_h, 0:p.src_w]
        code = np.stack([xx + 1, yy + 1], -1).astype(np.uint16)  # 0 = outside the source
        out = A.apply_image(code, p, interp="nearest")
        assert out.shape == (p.out_size, p.out_size, 2)
        v, u = np.nonzero(out[..., 0])
        src = out[v, u].astype(np.float64) - 1  # (N, 2) source x, y
        back = np.stack([u, v], -1) @ _inverse(p.matrix())[:, :2].T + _inverse(p.matrix())[:, 2]
        tol = 0.5 + (1 / 16 if rotate else 1e-6)  # warpAffine uses fixed point (1/32 px)
        assert np.abs(back - src).max() <= tol
        fwd = A.apply_points(src, p)
        assert np.abs(A.apply_points(back, p) - np.stack([u, v], -1)).max() < 1e-6
        assert np.isfinite(fwd).all()


def test_dot_drawn_on_source_lands_on_apply_points_pixel():
    rng = np.random.default_rng(5)
    for flip in (False, True):
        for angle in (0.0, 7.0):
            p = A.GeomParams(x0=6, y0=4, w=20, h=24, flip=flip, angle=angle, out_size=64, src_h=40, src_w=36)
            for _ in range(20):
                x, y = int(rng.integers(8, 24)), int(rng.integers(6, 26))
                img = np.zeros((40, 36), np.uint8)
                img[y, x] = 255
                out = A.apply_image(img, p, interp="nearest")
                u, v = np.rint(A.apply_points([x, y], p)).astype(int)
                assert out[v, u] == 255


@pytest.mark.parametrize("angle", [0.0, 10.0])
def test_bilinear_ramp_matches_the_affine_map(angle):
    # img[y, x] = x: bilinear output at (u, v) must equal the x of M^-1(u, v) (interior pixels)
    h, w = 40, 50
    img = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    p = A.GeomParams(x0=10, y0=8, w=24, h=20, flip=True, angle=angle, out_size=48, src_h=h, src_w=w)
    out = A.apply_image(img, p)
    Minv = _inverse(p.matrix())
    vv, uu = np.mgrid[4:44, 4:44]
    sx = uu * Minv[0, 0] + vv * Minv[0, 1] + Minv[0, 2]
    assert np.abs(out[4:44, 4:44] - sx).max() < 0.05


def test_flip_mirrors_points_and_pixels():
    p0 = A.GeomParams(3, 2, 30, 30, flip=False, angle=0.0, out_size=30, src_h=40, src_w=40)
    p1 = A.GeomParams(3, 2, 30, 30, flip=True, angle=0.0, out_size=30, src_h=40, src_w=40)
    img = np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    np.testing.assert_array_equal(A.apply_image(img, p1), A.apply_image(img, p0)[:, ::-1])
    np.testing.assert_array_equal(A.apply_image(img, p0), img[2:32, 3:33])
    pts = np.array([[5.0, 7.0], [20.5, 3.0]])
    a, b = A.apply_points(pts, p0), A.apply_points(pts, p1)
    np.testing.assert_allclose(b[:, 0], 29 - a[:, 0])
    np.testing.assert_allclose(a, pts - [3, 2])


def test_eval_geom_resizes_whole_frame_and_is_identity_at_same_size():
    img = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(A.apply_image(img, A.eval_geom(32, 32, 32)), img)
    out = A.apply_image(np.zeros((48, 64, 3), np.uint8), A.eval_geom(48, 64, 24))
    assert out.shape == (24, 24, 3)
    np.testing.assert_allclose(A.apply_points([[0, 0], [63, 47]], A.eval_geom(48, 64, 24)),
                               [[-0.3125, -0.25], [23.3125, 23.25]])  # (x+0.5)*S/W-0.5


def test_many_channel_label_maps_and_2d_maps():
    p = A.GeomParams(2, 2, 10, 10, flip=True, angle=5.0, out_size=20, src_h=16, src_w=16)
    m = np.random.default_rng(2).integers(0, 11, (16, 16, 7), dtype=np.uint8)
    out = A.apply_image(m, p, "nearest")
    assert out.shape == (20, 20, 7)
    np.testing.assert_array_equal(out[..., 5], A.apply_image(m[..., 5], p, "nearest"))
    assert set(np.unique(out)) <= set(np.unique(m)) | {0}  # nearest never invents labels


def test_sample_geom_ranges_and_determinism():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = A.sample_geom(rng, 60, 80, out_size=32)
        assert 0 <= p.x0 and p.x0 + p.w <= 80 and 0 <= p.y0 and p.y0 + p.h <= 60
        assert p.angle == 0.0 and p.out_size == 32
    a = A.sample_geom(np.random.default_rng(9), 60, 80, rotate_deg=4)
    b = A.sample_geom(np.random.default_rng(9), 60, 80, rotate_deg=4)
    assert a == b and abs(a.angle) <= 4
    assert not A.sample_geom(np.random.default_rng(1), 60, 80, flip_p=0.0).flip
    assert A.sample_geom(np.random.default_rng(1), 60, 80, flip_p=1.0).flip


def test_colour_jitter_hand_computed():
    f = np.full((1, 2, 2, 3), 100, np.uint8)
    assert A.apply_jitter(f, A.JitterParams(brightness=1.5))[0, 0, 0].tolist() == [150, 150, 150]
    f2 = np.array([[[[0, 0, 0], [200, 200, 200]]]], np.uint8)  # mean grey 100
    assert A.apply_jitter(f2, A.JitterParams(contrast=0.5)).reshape(-1, 3)[:, 0].tolist() == [50, 150]
    c = np.array([[[[200, 100, 0]]]], np.uint8)
    g = round(0.299 * 200 + 0.587 * 100)
    assert A.apply_jitter(c, A.JitterParams(saturation=0.0)).reshape(3).tolist() == [g, g, g]
    assert A.apply_jitter(c, A.JitterParams()) is c
    j = A.sample_jitter(np.random.default_rng(0), brightness=0.5)
    assert 0.5 <= j.brightness <= 1.5 and j.contrast == 1.0


def test_clip_normalisation():
    f = np.zeros((2, 4, 4, 3), np.uint8)
    f[..., 1] = 255
    x = A.normalize_clip(f)
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32
    assert torch.allclose(x[0, :, 0, 0], torch.tensor([-0.48145466 / 0.26862954, (1 - 0.4578275) / 0.26130258,
                                                       -0.40821073 / 0.27577711]))


def test_presets_follow_dfer_clip():
    assert A.get_preset("dfew").brightness == 0.5 and A.get_preset("dfew").rotate_deg == 0
    assert A.get_preset("FERV39K").rotate_deg == 4 and A.get_preset("ferv39k").brightness == 0
    m = A.get_preset("mafw")
    assert (m.scale, m.flip_p, m.rotate_deg, m.brightness) == ((0.08, 1.0), 0.5, 0, 0)
    g, j = A.sample_clip_aug(np.random.default_rng(0), 30, 40, A.get_preset("none"), 16)
    assert g == A.eval_geom(30, 40, 16) and j == A.JitterParams()
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        A.get_preset("heavy")
