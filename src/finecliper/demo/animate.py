"""Expression clips from one still face: move face-mesh points over time and warp the photo to follow.

Geometry. The rest mesh (478 MediaPipe points) is put in an eye-aligned *face frame*: origin between
the eye centres, x along the eye line (towards the image-right eye), y down the face, unit =
inter-ocular distance (IOD). An expression is a displacement of every mesh point in that frame, built
from AU-like *actions* (brow raise, lid tighten, lip-corner pull …). Each action moves a set of anchor
points explicitly (e.g. the mouth corners); feature points no action moves (brows, lids, lips) stay
put, and every skin point follows the anchors through a Gaussian kernel (radius ``FOLLOW_RADIUS``
IOD), so skin around a moved feature moves with it and far skin stays put.

Time. Frame t shows rest + a(t) · intensity · target, with a(t) a smoothstep from 0 (before a random
onset) to 1 (apex), optionally relaxing a little at the end. Pose (in-plane rotation, scale,
translation, each with a slow drift) and lighting (contrast, brightness) are drawn once per clip.

Warp. The moved points and a fixed ring of image-border points are triangulated (Delaunay on the
*destination* points; each triangle is rasterised and carries the affine map of its corners), which gives
for every output pixel the source pixel it shows; ``cv2.remap`` samples the photo there (a few ms per
frame; scipy's ``LinearNDInterpolator`` does the same point location far slower on this dense mesh). Where the
lips part, the opening is shaded as a dark mouth cavity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay

from finecliper.face import layout

EXPRESSIONS = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")  # DFEW label order
FOLLOW_RADIUS = 0.10  # IOD: how far skin around an anchor follows it
BORDER_POINTS_PER_SIDE = 8

# ---------------------------------------------------------------------------------------------- mesh regions
# MediaPipe mesh indices (face_mesh_connections FACEMESH_* sets, ordered in finecliper.face.layout).
EYE_CORNERS = {"image_left": (33, 133), "image_right": (263, 362)}  # (outer, inner)
BROWS = {"image_left": layout.RIGHT_BROW_POLY, "image_right": layout.LEFT_BROW_POLY}
EYES = {"image_left": layout.RIGHT_EYE_POLY, "image_right": layout.LEFT_EYE_POLY}
IRISES = tuple(range(468, 478))
MOUTH_CORNERS = (61, 291, 78, 308)
OUTER_UPPER_LIP = tuple(i for i in layout._OUTER_UPPER if i not in (61, 291))
OUTER_LOWER_LIP = tuple(i for i in layout._OUTER_LOWER if i not in (61, 291))
INNER_UPPER_LIP = tuple(i for i in layout._INNER_UPPER if i not in (78, 308))
INNER_LOWER_LIP = tuple(i for i in layout._INNER_LOWER if i not in (78, 308))
FACE_OVAL = layout.FACE_OVAL
SUBNASALE = 2
NOSE_TIP = 4


@dataclass
class FaceGeometry:
    """The rest mesh in the face frame, plus the region index sets the actions use."""

    q: np.ndarray  # (N, 2) rest mesh in IOD units, face frame
    origin: np.ndarray  # (2,) px, between the eye centres
    ex: np.ndarray  # (2,) unit vector of the face x axis in image pixels
    ey: np.ndarray  # (2,) unit vector of the face y axis (down the face)
    iod: float  # px
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    def to_pixels(self, d: np.ndarray) -> np.ndarray:
        """Displacements (N, 2) in IOD face-frame units → image pixels."""
        return self.iod * (d[:, :1] * self.ex + d[:, 1:] * self.ey)


def face_geometry(mesh: np.ndarray) -> FaceGeometry:
    """Face frame of a 478-point mesh (pixel coordinates) and its regions."""
    mesh = np.asarray(mesh, np.float64)
    if mesh.ndim != 2 or mesh.shape[0] < 478 or mesh.shape[1] != 2:
        raise ValueError(f"expected a (478, 2) MediaPipe mesh with irises, got {mesh.shape}")
    eye_l = mesh[list(EYE_CORNERS["image_left"])].mean(0)
    eye_r = mesh[list(EYE_CORNERS["image_right"])].mean(0)
    axis = eye_r - eye_l
    iod = float(np.linalg.norm(axis))
    if iod < 4:
        raise ValueError(f"face too small to animate: inter-ocular distance {iod:.1f} px")
    ex = axis / iod
    ey = np.array([-ex[1], ex[0]])
    origin = (eye_l + eye_r) / 2
    rel = mesh - origin
    q = np.stack([rel @ ex, rel @ ey], 1) / iod
    g = FaceGeometry(q=q, origin=origin, ex=ex, ey=ey, iod=iod)
    g.regions = _regions(q)
    return g


def _regions(q: np.ndarray) -> dict[str, np.ndarray]:
    r: dict[str, np.ndarray] = {}
    for side in ("image_left", "image_right"):
        outer, inner = EYE_CORNERS[side]
        eye = np.array([i for i in EYES[side] if i not in (outer, inner)])
        # upper lid: above the corner-to-corner line
        a, b = q[outer], q[inner]
        t = (q[eye, 0] - a[0]) / (b[0] - a[0])
        line_y = a[1] + t * (b[1] - a[1])
        r[f"upper_lid_{side}"] = eye[q[eye, 1] < line_y]
        r[f"lower_lid_{side}"] = eye[q[eye, 1] >= line_y]
        r[f"brow_{side}"] = np.array(BROWS[side])
    r["mouth_corners"] = np.array(MOUTH_CORNERS)
    for name, idx in (("outer_upper_lip", OUTER_UPPER_LIP), ("outer_lower_lip", OUTER_LOWER_LIP),
                      ("inner_upper_lip", INNER_UPPER_LIP), ("inner_lower_lip", INNER_LOWER_LIP)):
        r[name] = np.array(idx)
    lips = set(layout._OUTER_UPPER + layout._OUTER_LOWER + layout._INNER_UPPER + layout._INNER_LOWER)
    # lower nose: alae, nostrils and columella, between the tip and the subnasale
    y_tip, y_sub = q[NOSE_TIP, 1], q[SUBNASALE, 1]
    n = np.arange(468)
    r["lower_nose"] = n[(np.abs(q[:468, 0]) < 0.45) & (q[:468, 1] > y_tip - 0.08) & (q[:468, 1] <= y_sub + 0.02)
                       & ~np.isin(n, list(lips))]
    # cheeks: below the eyes, beside the nose, above the mouth corners
    y_eye_low = max(q[r["lower_lid_image_left"], 1].max(), q[r["lower_lid_image_right"], 1].max())
    y_corner = q[[61, 291], 1].mean()
    cheek = (np.abs(q[:468, 0]) > 0.35) & (np.abs(q[:468, 0]) < 0.85) & (q[:468, 1] > y_eye_low + 0.12) & \
            (q[:468, 1] < y_corner - 0.1)
    r["cheeks"] = n[cheek & ~np.isin(n, list(lips) + list(r["lower_nose"]))]
    # jaw: face-oval points below the mouth corners (they carry the chin when the jaw drops)
    oval = np.array(FACE_OVAL)
    r["jaw"] = oval[q[oval, 1] > y_corner]
    r["oval_upper"] = oval[q[oval, 1] <= y_corner]
    r["irises"] = np.array(IRISES)
    return r


# ---------------------------------------------------------------------------------------------- actions
def _bell(q: np.ndarray, idx: np.ndarray, a: int, b: int) -> np.ndarray:
    """0 at the x of points a and b (e.g. eye corners), 1 midway: a lid moves most in its middle."""
    x0, x1 = sorted((q[a, 0], q[b, 0]))
    t = np.clip((q[idx, 0] - x0) / max(x1 - x0, 1e-6), 0, 1)
    return np.sin(np.pi * t)


def _innerness(q: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """1 at the brow end nearest the midline, 0 at the outer end."""
    ax = np.abs(q[idx, 0])
    return np.clip((ax.max() - ax) / max(ax.max() - ax.min(), 1e-6), 0, 1)


class Targets:
    """Accumulates explicit anchor displacements (IOD units); ``field()`` spreads them to the whole mesh."""

    def __init__(self, g: FaceGeometry):
        self.g = g
        self.disp = np.zeros_like(g.q)  # (N, 2)
        self.anchor = np.zeros(len(g.q), bool)

    def move(self, idx, dx, dy) -> None:
        idx = np.asarray(idx, np.int64)
        self.disp[idx, 0] += dx
        self.disp[idx, 1] += dy
        self.anchor[idx] = True

    def pin(self, idx) -> None:
        self.anchor[np.asarray(idx, np.int64)] = True

    def field(self, radius: float = FOLLOW_RADIUS) -> np.ndarray:
        """(N, 2): anchors keep their displacement; others take the kernel-weighted anchor displacement."""
        q = self.g.q
        a = np.flatnonzero(self.anchor)
        out = self.disp.copy()
        free = np.flatnonzero(~self.anchor)
        if len(a) and len(free):
            d2 = ((q[free, None, :] - q[None, a, :]) ** 2).sum(-1)  # (F, A)
            w = np.exp(-d2 / (2 * radius ** 2))
            out[free] = (w @ self.disp[a]) / np.maximum(1.0, w.sum(1, keepdims=True))
        return out


def _sides(g: FaceGeometry):
    for side, sign in (("image_left", -1.0), ("image_right", 1.0)):  # sign: x direction away from the midline
        yield side, sign


def inner_brow_raise(t: Targets, amp: float) -> None:
    for side, _ in _sides(t.g):
        b = t.g.regions[f"brow_{side}"]
        t.move(b, 0, -amp * (0.25 + 0.75 * _innerness(t.g.q, b)))


def outer_brow_raise(t: Targets, amp: float) -> None:
    for side, _ in _sides(t.g):
        b = t.g.regions[f"brow_{side}"]
        t.move(b, 0, -amp * (1.0 - 0.6 * _innerness(t.g.q, b)))


def brow_lower(t: Targets, amp: float) -> None:
    for side, _ in _sides(t.g):
        b = t.g.regions[f"brow_{side}"]
        t.move(b, 0, amp * (0.5 + 0.5 * _innerness(t.g.q, b)))


def brows_together(t: Targets, amp: float) -> None:
    for side, sign in _sides(t.g):
        b = t.g.regions[f"brow_{side}"]
        t.move(b, -sign * amp * (0.3 + 0.7 * _innerness(t.g.q, b)), 0)


def _lids(t: Targets, upper: float, lower: float) -> None:
    """Upper lids move by ``upper`` (negative = up), lower lids by ``lower``; corners and irises pinned."""
    q = t.g.q
    for side, _ in _sides(t.g):
        outer, inner = EYE_CORNERS[side]
        up, lo = t.g.regions[f"upper_lid_{side}"], t.g.regions[f"lower_lid_{side}"]
        t.move(up, 0, upper * _bell(q, up, outer, inner))
        t.move(lo, 0, lower * _bell(q, lo, outer, inner))
        t.pin([outer, inner])
    t.pin(t.g.regions["irises"])


def eye_opening(g: FaceGeometry) -> float:
    """Rest lid opening (IOD), mean over both eyes at the lid middle."""
    vals = []
    for side, _ in _sides(g):
        up, lo = g.regions[f"upper_lid_{side}"], g.regions[f"lower_lid_{side}"]
        x_mid = g.q[list(EYE_CORNERS[side]), 0].mean()
        u = up[np.argmin(np.abs(g.q[up, 0] - x_mid))]
        d = lo[np.argmin(np.abs(g.q[lo, 0] - x_mid))]
        vals.append(g.q[d, 1] - g.q[u, 1])
    return float(np.mean(vals))


def eyes_widen(t: Targets, amp: float) -> None:
    _lids(t, -amp, 0.25 * amp)


def lids_tighten(t: Targets, amp: float) -> None:
    amp = min(amp, 0.45 * eye_opening(t.g))  # never close the eye
    _lids(t, 0.35 * amp, -0.65 * amp)


def cheek_raise(t: Targets, amp: float) -> None:
    t.move(t.g.regions["cheeks"], 0, -amp)


def lip_corners(t: Targets, up: float, out: float) -> None:
    """Mouth corners up by ``up`` (negative = down) and outwards by ``out``; the lip contours follow
    smoothly (vertical share (|x|/half-width)², horizontal share |x|/half-width), so the lips curve."""
    q = t.g.q
    lips = np.unique(np.concatenate([t.g.regions[k] for k in LIP_REGIONS]))
    x0 = q[[61, 291], 0].mean()  # mouth midline
    half = np.abs(q[[61, 291], 0] - x0).mean()
    r = np.clip(np.abs(q[lips, 0] - x0) / half, 0, 1)
    t.move(lips, np.sign(q[lips, 0] - x0) * out * r, -up * r ** 2)


def lip_press(t: Targets, amp: float) -> None:
    """Red lips thin towards the closed lip line; the inner lip line stays."""
    q = t.g.q
    up, lo = t.g.regions["outer_upper_lip"], t.g.regions["outer_lower_lip"]
    t.move(up, 0, amp * _bell(q, up, 61, 291) ** 0.5)
    t.move(lo, 0, -amp * _bell(q, lo, 61, 291) ** 0.5)
    t.pin(np.concatenate([t.g.regions["inner_upper_lip"], t.g.regions["inner_lower_lip"]]))
    lip_corners(t, 0.0, -0.2 * amp)


def upper_lip_raise(t: Targets, amp: float) -> None:
    q = t.g.q
    for name in ("outer_upper_lip", "inner_upper_lip"):
        idx = t.g.regions[name]
        t.move(idx, 0, -amp * (0.3 + 0.7 * _bell(q, idx, 61, 291)))


def nose_wrinkle(t: Targets, amp: float) -> None:
    t.move(t.g.regions["lower_nose"], 0, -amp)


def jaw_drop(t: Targets, amp: float) -> None:
    """Chin and lower lip down (the mouth opens); the jaw contour drops more towards the chin."""
    q = t.g.q
    jaw = t.g.regions["jaw"]
    y_corner = q[[61, 291], 1].mean()
    depth = np.clip((q[jaw, 1] - y_corner) / max(q[jaw, 1].max() - y_corner, 1e-6), 0, 1)
    t.move(jaw, 0, amp * depth)
    t.move(t.g.regions["outer_lower_lip"], 0, 0.85 * amp * _bell(q, t.g.regions["outer_lower_lip"], 61, 291) ** 0.5)
    t.move(t.g.regions["inner_lower_lip"], 0, 0.85 * amp * _bell(q, t.g.regions["inner_lower_lip"], 78, 308) ** 0.5)
    lip_corners(t, -0.1 * amp, -0.08 * amp)


# Recipes: (action, amplitude in IOD at intensity 1). Chosen after FACS prototypes (EMFACS):
# happiness AU6+12, sadness AU1+4+15, anger AU4+5/7+23/24, surprise AU1+2+5+26, disgust AU9+10(+4),
# fear AU1+2+4+5+20+26.
RECIPES: dict[str, tuple[tuple[str, float], ...]] = {
    "happiness": (("lip_corners_up", 0.11), ("lip_corners_out", 0.07), ("cheek_raise", 0.05), ("lids_tighten", 0.05)),
    "sadness": (("inner_brow_raise", 0.11), ("brows_together", 0.03), ("lip_corners_up", -0.09), ("lids_droop", 0.02)),
    "neutral": (),
    "anger": (("brow_lower", 0.12), ("brows_together", 0.08), ("lip_press", 0.06), ("lids_tighten", 0.03)),
    "surprise": (("inner_brow_raise", 0.10), ("outer_brow_raise", 0.12), ("eyes_widen", 0.05), ("jaw_drop", 0.22)),
    "disgust": (("nose_wrinkle", 0.05), ("upper_lip_raise", 0.10), ("brow_lower", 0.05), ("lids_tighten", 0.03),
                ("lip_corners_up", -0.03)),
    "fear": (("inner_brow_raise", 0.10), ("brows_together", 0.05), ("eyes_widen", 0.06), ("lip_corners_out", 0.12),
             ("lip_corners_up", -0.02), ("jaw_drop", 0.06)),
}

_ACTIONS = {
    "inner_brow_raise": inner_brow_raise,
    "outer_brow_raise": outer_brow_raise,
    "brow_lower": brow_lower,
    "brows_together": brows_together,
    "eyes_widen": eyes_widen,
    "lids_tighten": lids_tighten,
    "lids_droop": lambda t, a: _lids(t, a, 0.0),
    "cheek_raise": cheek_raise,
    "lip_corners_up": lambda t, a: lip_corners(t, a, 0.0),
    "lip_corners_out": lambda t, a: lip_corners(t, 0.0, a),
    "lip_press": lip_press,
    "upper_lip_raise": upper_lip_raise,
    "nose_wrinkle": nose_wrinkle,
    "jaw_drop": jaw_drop,
}
LIP_REGIONS = ("mouth_corners", "outer_upper_lip", "outer_lower_lip", "inner_upper_lip", "inner_lower_lip")
FEATURE_REGIONS = ("brow_image_left", "brow_image_right", "upper_lid_image_left", "lower_lid_image_left",
                   "upper_lid_image_right", "lower_lid_image_right", "irises", "mouth_corners", "outer_upper_lip",
                   "outer_lower_lip", "inner_upper_lip", "inner_lower_lip")
MOUTH_FULL_SHADE = 0.02  # IOD²: new mouth opening at which the cavity is fully shaded
NEUTRAL_DRIFT = 0.008  # IOD: far below the describer's thresholds (0.02–0.05)


def expression_field(g: FaceGeometry, expression: str, intensity: float = 1.0,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """Apex displacement of every mesh point (N, 2) in IOD face-frame units.

    ``neutral`` is a tiny smooth random drift (needs ``rng``); the others follow ``RECIPES``.
    """
    if expression not in RECIPES:
        raise ValueError(f"unknown expression {expression!r}; one of {', '.join(EXPRESSIONS)}")
    t = Targets(g)
    if expression == "neutral":
        rng = rng or np.random.default_rng(0)
        # a few random anchors drift a little; the kernel spreads it smoothly
        idx = rng.choice(468, size=12, replace=False)
        t.disp[idx] = rng.normal(0, NEUTRAL_DRIFT, (12, 2))
        t.anchor[idx] = True
        return t.field(radius=0.25)
    for action, amp in RECIPES[expression]:
        _ACTIONS[action](t, amp * intensity)
    # features move only when an action moves them (a raised brow must not drag the lids along); the
    # head outline does not deform (only the jaw may drop); skin follows the features it lies near
    t.pin(np.concatenate([t.g.regions[k] for k in FEATURE_REGIONS] + [t.g.regions["oval_upper"]]))
    return t.field()


# ---------------------------------------------------------------------------------------------- clip parameters
@dataclass
class ClipParams:
    expression: str
    n_frames: int
    intensity: float  # multiplies every recipe amplitude
    onset: int  # last frame at rest
    apex: int  # first frame at full intensity
    release: float  # fraction of the apex lost by the last frame (0 = held)
    rotation: tuple[float, float]  # degrees at the first and last frame
    scale: tuple[float, float]
    shift: tuple[tuple[float, float], tuple[float, float]]  # fraction of the frame size, first and last frame
    contrast: float
    brightness: float  # added to 0..255 values
    seed: int


def sample_clip_params(expression: str, n_frames: int, rng: np.random.Generator) -> ClipParams:
    """Random onset, intensity, pose and lighting of one clip."""
    if expression not in RECIPES:
        raise ValueError(f"unknown expression {expression!r}; one of {', '.join(EXPRESSIONS)}")
    if n_frames < 4:
        raise ValueError(f"a clip needs at least 4 frames, got {n_frames}")
    onset = int(rng.integers(0, max(1, round(0.3 * n_frames))))
    rise = int(rng.integers(max(2, round(0.2 * n_frames)), max(3, round(0.45 * n_frames)) + 1))
    apex = min(n_frames - 1, onset + rise)
    rot0 = float(rng.uniform(-8, 8))
    s0 = float(rng.uniform(0.92, 1.08))
    sh0 = tuple(rng.uniform(-0.04, 0.04, 2).tolist())
    return ClipParams(
        expression=expression, n_frames=n_frames, intensity=float(rng.uniform(0.7, 1.3)), onset=onset, apex=apex,
        release=float(rng.uniform(0.0, 0.3)) if rng.random() < 0.3 else 0.0,
        rotation=(rot0, rot0 + float(rng.uniform(-3, 3))), scale=(s0, s0 * float(rng.uniform(0.97, 1.03))),
        shift=(sh0, tuple((np.array(sh0) + rng.uniform(-0.02, 0.02, 2)).tolist())),
        contrast=float(rng.uniform(0.8, 1.2)), brightness=float(rng.uniform(-25, 25)), seed=int(rng.integers(2**31)))


def activation(p: ClipParams) -> np.ndarray:
    """a(t) for every frame (T,): 0 up to the onset, smoothstep to 1 at the apex, then held or relaxing."""
    t = np.arange(p.n_frames, dtype=np.float64)
    u = np.clip((t - p.onset) / max(p.apex - p.onset, 1), 0, 1)
    a = u * u * (3 - 2 * u)
    after = np.clip((t - p.apex) / max(p.n_frames - 1 - p.apex, 1), 0, 1)
    return a * (1 - p.release * after)


def pose_matrix(p: ClipParams, frame: int, size: int) -> np.ndarray:
    """(2, 3) similarity that maps the unposed frame to the posed one (about the frame centre)."""
    f = frame / max(p.n_frames - 1, 1)
    rot = p.rotation[0] + f * (p.rotation[1] - p.rotation[0])
    scale = p.scale[0] + f * (p.scale[1] - p.scale[0])
    shift = (1 - f) * np.array(p.shift[0]) + f * np.array(p.shift[1])
    c = (size - 1) / 2
    A = cv2.getRotationMatrix2D((c, c), rot, scale)
    A[:, 2] += shift * size
    return A


# ---------------------------------------------------------------------------------------------- warping
def border_points(size: int, per_side: int = BORDER_POINTS_PER_SIDE) -> np.ndarray:
    """Fixed points on (just outside) the frame edge, so the triangulation covers every pixel. (4·per_side, 2)"""
    lo, hi = -1.0, size
    s = np.linspace(lo, hi, per_side + 1)[:-1]
    return np.concatenate([np.stack([s, np.full_like(s, lo)], 1), np.stack([np.full_like(s, hi), s], 1),
                           np.stack([s[::-1] + (hi - lo) / per_side, np.full_like(s, hi)], 1),
                           np.stack([np.full_like(s, lo), s[::-1] + (hi - lo) / per_side], 1)])


class TriangleWarp:
    """cv2.remap maps sending each output pixel to the source pixel it shows, for points moved src → dst.

    Inside each triangle of the destination points the map is the affine map of its corners onto their
    source points: continuous, and exact at every point (points must cover the frame: add
    ``border_points``). Point location: the first call triangulates (Delaunay) and rasterises triangle
    ids (``cv2.fillConvexPoly``); every pixel then walks across the edge it lies beyond until a triangle
    contains it. Later calls on slightly moved points (the next frame) keep the triangles and start the
    walk from the previous frame's triangle, so a frame costs a few ms; they triangulate afresh only when
    a triangle has flipped.
    """

    def __init__(self, size: int):
        self.size = int(size)
        ys, xs = np.mgrid[0:size, 0:size]
        self.ph = np.stack([xs.ravel(), ys.ravel(), np.ones(size * size)], 1)  # (S², 3) homogeneous pixel centres
        self.tri: np.ndarray | None = None  # (K, 3)
        self.neighbors: np.ndarray | None = None  # (K, 3): triangle across the edge opposite each corner
        self.orientation: np.ndarray | None = None  # (K,) sign of each triangle's area when triangulated
        self.ids: np.ndarray | None = None  # (S²,) triangle of each pixel in the last call
        self.triangulations = 0

    def _triangulate(self, dst: np.ndarray) -> None:
        dt = Delaunay(dst)
        self.tri, self.neighbors = dt.simplices, dt.neighbors
        self.orientation = np.sign(_signed_areas(dst, self.tri))
        ids = np.full((self.size, self.size), -1, np.int32)
        fixed = np.round(dst * 16).astype(np.int32)
        for k, t in enumerate(self.tri):
            cv2.fillConvexPoly(ids, fixed[t], int(k), lineType=cv2.LINE_8, shift=4)
        if (ids < 0).any():  # outside the hull: start from the nearest claimed pixel's triangle
            _, (iy, ix) = ndimage.distance_transform_edt(ids < 0, return_indices=True)
            ids = ids[iy, ix]
        self.ids = ids.ravel().astype(np.int64)
        self.triangulations += 1

    def maps(self, src_points: np.ndarray, dst_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        src = np.asarray(src_points, np.float64)
        dst = np.asarray(dst_points, np.float64)
        if self.tri is None or len(dst) != self.tri.max() + 1 or \
                (np.sign(_signed_areas(dst, self.tri)) != self.orientation).any():
            self._triangulate(dst)
        tri, ph, k = self.tri, self.ph, self.ids
        # [x y 1] = bary @ D with D (K, 3, 3) the corners, so the map is [x y 1] @ Dinv @ source corners
        D = np.concatenate([dst[tri], np.ones((len(tri), 3, 1))], 2)
        Dinv = np.linalg.inv(D)
        X = Dinv @ src[tri]  # (K, 3, 2)
        # walk each pixel across the edge opposite its most negative barycentric coordinate until inside
        todo = np.arange(len(k))
        for _ in range(4 * self.size):
            bary = np.einsum("mi,mij->mj", ph[todo], Dinv[k[todo]])
            out = bary.min(1) < -1e-9
            todo, bary = todo[out], bary[out]
            if not len(todo):
                break
            nb = self.neighbors[k[todo], bary.argmin(1)]
            inside_hull = nb >= 0  # -1: beyond the hull; keep the triangle (affine extrapolation)
            k[todo[inside_hull]] = nb[inside_hull]
            todo = todo[inside_hull]
        out = np.einsum("mi,mij->mj", ph, X[k])  # (S², 2)
        s = self.size
        return out[:, 0].reshape(s, s).astype(np.float32), out[:, 1].reshape(s, s).astype(np.float32)


def _signed_areas(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])


def piecewise_affine_maps(src_points: np.ndarray, dst_points: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One-off :class:`TriangleWarp` maps (size, size) float32 for points moved src → dst."""
    return TriangleWarp(size).maps(src_points, dst_points)


def frame_maps(rest: np.ndarray, moved: np.ndarray, pose: np.ndarray, size: int,
               warp: TriangleWarp | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Maps of one frame: mesh points moved (rest → moved) and the whole frame posed by ``pose`` (2, 3).

    Destinations: posed moved mesh + the fixed frame border; sources: rest mesh + the border seen through
    the inverse pose. With no expression the piecewise-affine map is exactly the pose. Pass the clip's
    ``warp`` to reuse its triangulation from frame to frame.
    """
    border = border_points(size)
    inv = cv2.invertAffineTransform(pose)
    dst = np.concatenate([moved @ pose[:, :2].T + pose[:, 2], border])
    src = np.concatenate([rest, border @ inv[:, :2].T + inv[:, 2]])
    return (warp or TriangleWarp(size)).maps(src, dst)


def polygon_area(points: np.ndarray) -> float:
    """Area of a closed polygon (M, 2) (shoelace)."""
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def shade_mouth(frame: np.ndarray, points: np.ndarray, rest_area: float, full_area: float, cavity: np.ndarray) -> None:
    """Darken the opening between the inner lips (in place) by the share of it that is new since rest.

    The warp stretches whatever lay between the lips at rest (a lip line, or teeth); the part of the opening
    that did not exist at rest is shown as a dark cavity, fading in as the new area grows to ``full_area``.
    Areas are in this frame's pixels²; ``cavity`` (3,) is the colour.
    """
    poly = points[list(layout.INNER_MOUTH_POLY)]
    area = polygon_area(poly)
    new = area - rest_area
    if new <= 0:
        return
    alpha = 0.85 * (new / area) * min(1.0, new / full_area)
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=4)
    m = cv2.GaussianBlur(mask, (3, 3), 0).astype(np.float32)[:, :, None] / 255 * alpha
    frame[:] = np.clip(frame * (1 - m) + cavity * m, 0, 255).astype(np.uint8)


def animate(image: np.ndarray, mesh: np.ndarray, params: ClipParams, size: int | None = None,
            return_points: bool = False):
    """Frames (T, size, size, 3) uint8 of one clip (and the moved, posed mesh (T, N, 2) if ``return_points``).

    ``image`` (S, S, 3) uint8 is the rest face, ``mesh`` (478, 2) its points; frames are rendered at ``size``
    (default S) directly from the photo, one resampling per frame.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or image.shape[0] != image.shape[1]:
        raise ValueError(f"expected a square (S, S, 3) uint8 face image, got {image.shape} {image.dtype}")
    src_size = image.shape[0]
    size = int(size or src_size)
    if size != src_size:  # work at the output size: downscale the photo once (area filter: no aliasing)
        interp = cv2.INTER_AREA if size < src_size else cv2.INTER_CUBIC
        image = cv2.resize(image, (size, size), interpolation=interp)
        mesh = (np.asarray(mesh, np.float64) + 0.5) * (size / src_size) - 0.5
    rest = np.asarray(mesh, np.float64)
    g = face_geometry(rest)
    rng = np.random.default_rng(params.seed)
    target = g.to_pixels(expression_field(g, params.expression, params.intensity, rng))  # (N, 2) px
    act = activation(params)
    rest_area = polygon_area(rest[list(layout.INNER_MOUTH_POLY)])
    cavity = 0.25 * image.reshape(-1, 3).mean(0)  # a dark shade of the photo's own colours (grey stays grey)
    frames = np.empty((params.n_frames, size, size, 3), np.uint8)
    posed_pts = np.empty((params.n_frames, len(rest), 2), np.float32)
    warp = TriangleWarp(size)
    for k in range(params.n_frames):
        pts = rest + act[k] * target
        pose = pose_matrix(params, k, size)
        mx, my = frame_maps(rest, pts, pose, size, warp)
        f = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        posed = pts @ pose[:, :2].T + pose[:, 2]
        s2 = pose_scale(pose) ** 2
        shade_mouth(f, posed, rest_area * s2, MOUTH_FULL_SHADE * g.iod ** 2 * s2, cavity)
        f = f.astype(np.float32) * params.contrast + params.brightness + 128 * (1 - params.contrast)
        frames[k] = np.clip(f, 0, 255).astype(np.uint8)
        posed_pts[k] = posed
    return (frames, posed_pts) if return_points else frames


def pose_scale(A: np.ndarray) -> float:
    return float(math.sqrt(abs(np.linalg.det(A[:, :2]))))
