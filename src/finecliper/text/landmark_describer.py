"""Label-free descriptions of facial movement from a 68-point landmark sequence (the `landmarks` backend).

Per clip:

1. **Head pose out.** With per-point depth (``depth``, (T, 68) in the pixel scale of x and y; smaller z
   is closer to the camera, as in MediaPipe's mesh), each frame's 3-D landmarks are aligned to the
   clip's reference face by a similarity fit (Kabsch/Umeyama, iteratively reweighted so that a few
   points that do move count little) on points that do not move with expression: ``RIGID_POINTS`` =
   eye corners, nose bridge, the face contour at the ears. The reference is the median aligned face of
   the baseline frames, turned so that its eye line lies in the image plane (yaw and roll out, pitch
   as the camera saw it). A head that turns, nods or tilts therefore moves no measured point. The
   head's own rotation (from the same fits) is reported apart, in ``Description.head_text``, never in
   ``text``. Without depth (FaceXFormer caches, 2-D input) each frame is put in its own eye-aligned
   frame: translation, in-plane rotation and scale cancel, out-of-plane rotation does not.
   ``Description.alignment`` says which ("3d" | "2d"); "3d" needs finite depth on every usable frame.
2. **Signals** (table below), in units of the inter-ocular distance (IOD: between the two eye centres,
   corner midpoints; about 60 px on a 224 px face crop, so 0.03 IOD is about 2 px). Each is smoothed
   over time (median filter of about ``smooth_s`` = 0.2 s: 2*floor(smooth_s*fps/2)+1 frames, at
   least 3; 5 at 25 fps), and its change from the neutral reference is taken: the median of the first
   ``baseline_frames`` valid frames, or of all of them with ``baseline="median"``.
3. **Events.** Every event of a motion is reported, not only the one around its peak. Hysteresis: an
   event is a run of frames whose change stays at or above ``exit_fraction`` (1/2) of the motion's
   threshold and that holds at least ``min_event_s`` (0.08 s, at least 2 frames) at or above the
   threshold; two such runs less than ``min_gap_s`` (0.3 s) apart are one event. So two mouth
   openings separated by a closed mouth for 0.3 s or more are two events, and a dip that stays above
   half the threshold never splits one. An event spans its first to its last frame at or above the
   threshold.
4. **Eyes.** Closure is judged on the raw lid opening (a 3-frame median only) relative to the open-eye
   opening (the 90th percentile over the clip's valid frames): a closure is a run of frames below
   ``reopen_ratio`` (50 %) of it that reaches ``closed_ratio`` (35 %), and spans its frames at or below
   35 %. A closure longer than ``blink_max_s`` (0.4 s, the long end of a spontaneous blink) is the event
   "the eyes close"; shorter ones are blinks, counted in ``Description.blinks`` and never put in the
   text (people blink every few seconds: a blink in every description would be noise). "The eyes
   narrow" is never reported over a closure or a blink.
5. **Time.** When the frame rate is known and the clip lasts at least ``seconds_from_s`` (4 s), each
   event gets its times ("from 1.2 s to 2.6 s": from its first frame's start to its last frame's end);
   events whose starts and ends each lie within ``min_gap_s`` of each other share a sentence, which
   gives their earliest start and latest end; a motion with more than ``max_listed_events`` (3) events
   is counted instead ("the mouth opens five times between 1.2 s and 8.4 s"). Shorter clips say
   "throughout the clip" when an event covers at least ``throughout_span`` (60 %) of the clip, else
   the half holding its centre; events in the same part share a sentence ("the mouth opens twice in
   the first half of the clip"). Durations use ``assumed_fps`` (25) when fps is unknown.

The text never names an emotion: it says what moved, how much and when.

Landmark order is iBUG/300-W: 0-16 jaw, 17-21 subject's right brow (image-left), 22-26 left brow,
27-30 nose bridge, 31-35 lower nose, 36-41 right eye, 42-47 left eye, 48-59 outer lip, 60-67 inner lip.

Thresholds (change from the reference; "slight" from 1x, "clear" from 2x, "marked" from 4x):

| motion              | signal                                                | direction | threshold |
|---------------------|-------------------------------------------------------|-----------|-----------|
| inner_brow_raise    | height of inner brow ends (21, 22) above the eye line | +         | 0.04 IOD  |
| inner_brow_lower    | same                                                  | -         | 0.04 IOD  |
| outer_brow_raise    | height of outer brow ends (17, 26) above the eye line | +         | 0.04 IOD  |
| outer_brow_lower    | same                                                  | -         | 0.04 IOD  |
| brows_together      | horizontal gap between inner brow ends (21, 22)       | -         | 0.03 IOD  |
| eyes_widen          | lid opening (37-41, 38-40, 43-47, 44-46), both eyes   | +         | 0.02 IOD  |
| eyes_narrow         | same (lid tightening; not over a closure or blink)    | -         | 0.02 IOD  |
| eyes_close          | same, raw, relative to the open eye (rule 4)          | -         | 35 % open |
| lip_corner_pull     | height of the mouth corners (48, 54), up is positive  | +         | 0.03 IOD  |
| lip_corner_depress  | same                                                  | -         | 0.03 IOD  |
| lip_stretch         | mouth width 48-54                                     | +         | 0.04 IOD  |
| mouth_open          | inner-lip gap (61-67, 62-66, 63-65)                   | +         | 0.05 IOD  |
| mouth_close         | same                                                  | -         | 0.05 IOD  |
| jaw_drop            | chin (8) below the eye line                           | +         | 0.05 IOD  |
| lip_press           | red-lip thickness 51-62 + 57-66 (not while opening)   | -         | 0.03 IOD  |
| nose_wrinkle        | height of the lower nose (31-35), up is positive      | +         | 0.025 IOD |
| upper_lip_raise     | nose base (33) to upper lip (51) distance             | -         | 0.03 IOD  |
| head_tilt_back/forward | head pitch (3-D only), nose up is positive         | +/-       | 15 deg    |
| head_turn_left/right   | head yaw (3-D only), to the subject's left positive | +/-       | 15 deg    |
| head_tilt_left/right   | head roll, subject's left ear down is positive     | +/-       | 15 deg    |

"Left" and "right" are the subject's own. Head motions go to ``head_text`` only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import median_filter

# Level multipliers of a motion's threshold and the adverb each adds to the sentence.
LEVELS = (("slight", 1.0, "slightly"), ("clear", 2.0, ""), ("marked", 4.0, "markedly"))
ADVERBS = {name: adverb for name, _, adverb in LEVELS}
TIMING_PHRASES = {
    "first_half": "in the first half of the clip",
    "second_half": "in the second half of the clip",
    "throughout": "throughout the clip",
}
COUNT_WORDS = {2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times",
               7: "seven times", 8: "eight times", 9: "nine times", 10: "ten times"}
STILL_TEXT = "No clear facial movement is visible in the clip."
NO_FACE_TEXT = "No face is visible in the clip."
# Points that move with the skull, not with expression: face contour at the ears, nose bridge, eye corners.
RIGID_POINTS = (0, 1, 15, 16, 27, 28, 29, 30, 36, 39, 42, 45)


@dataclass(frozen=True)
class DescriberParams:
    """Every rule of the module doc in one place (part of the description cache's identity)."""

    smooth_s: float = 0.2  # temporal median window, about this long (odd, at least 3 frames)
    baseline_frames: int = 5  # "first" baseline: median of this many first valid frames (at most 20 %)
    exit_fraction: float = 0.5  # an event lasts while the change stays above this share of the threshold
    min_event_s: float = 0.08  # time over the threshold an event needs (at least 2 frames)
    min_gap_s: float = 0.3  # events closer than this are one
    throughout_span: float = 0.6  # share of a short clip an event must cover to be "throughout"
    seconds_from_s: float = 4.0  # clips this long (fps known) get times in seconds
    max_listed_events: int = 3  # more events of one motion are counted, not listed
    open_percentile: float = 90.0  # open-eye reference: this percentile of the raw lid opening
    closed_ratio: float = 0.35  # eyes closed at or below this share of the open-eye opening
    reopen_ratio: float = 0.5  # ... until back above this share
    blink_max_s: float = 0.4  # closures up to this long are blinks, longer ones "the eyes close"
    assumed_fps: float = 25.0  # for durations when fps is unknown
    robust_iterations: int = 6  # reweighting rounds of the rigid 3-D fit


DEFAULT_PARAMS = DescriberParams()


@dataclass(frozen=True)
class MotionSpec:
    name: str
    signal: str
    direction: int  # +1: the signal grows, -1: it shrinks
    threshold: float  # IOD units (head: degrees)
    region: str
    subject: str  # plural subjects take plural verbs: "the brows rise"
    verb: str
    tail: str = ""  # after the adverb: "turns slightly to the subject's left"


MOTIONS: tuple[MotionSpec, ...] = (
    MotionSpec("inner_brow_raise", "inner_brow_height", +1, 0.04, "brows", "the inner brows", "rise"),
    MotionSpec("inner_brow_lower", "inner_brow_height", -1, 0.04, "brows", "the inner brows", "lower"),
    MotionSpec("outer_brow_raise", "outer_brow_height", +1, 0.04, "brows", "the outer brows", "rise"),
    MotionSpec("outer_brow_lower", "outer_brow_height", -1, 0.04, "brows", "the outer brows", "lower"),
    MotionSpec("brows_together", "brow_gap", -1, 0.03, "brows", "the brows", "draw together"),
    MotionSpec("eyes_widen", "eye_opening", +1, 0.02, "eyes", "the eyes", "widen"),
    MotionSpec("eyes_narrow", "eye_opening", -1, 0.02, "eyes", "the eyelids", "tighten and the eyes narrow"),
    MotionSpec("lip_corner_pull", "lip_corner_height", +1, 0.03, "mouth", "the mouth corners", "pull up"),
    MotionSpec("lip_corner_depress", "lip_corner_height", -1, 0.03, "mouth", "the mouth corners", "pull down"),
    MotionSpec("lip_stretch", "mouth_width", +1, 0.04, "mouth", "the lips", "stretch sideways"),
    MotionSpec("mouth_open", "mouth_opening", +1, 0.05, "mouth", "the mouth", "opens"),
    MotionSpec("mouth_close", "mouth_opening", -1, 0.05, "mouth", "the mouth", "closes"),
    MotionSpec("jaw_drop", "chin_drop", +1, 0.05, "jaw", "the jaw", "drops"),
    MotionSpec("lip_press", "lip_thickness", -1, 0.03, "mouth", "the lips", "press together"),
    MotionSpec("nose_wrinkle", "nose_height", +1, 0.025, "nose", "the nose", "wrinkles"),
    MotionSpec("upper_lip_raise", "nose_to_lip", -1, 0.03, "mouth", "the upper lip", "rises"),
)
# Detected by rule 4 of the module doc; the threshold is the closed share of the open-eye opening.
EYE_CLOSURE = MotionSpec("eyes_close", "eye_opening", -1, DEFAULT_PARAMS.closed_ratio, "eyes", "the eyes", "close")
HEAD_MOTIONS: tuple[MotionSpec, ...] = (
    MotionSpec("head_tilt_back", "head_pitch", +1, 15.0, "head", "the head", "tilts back"),
    MotionSpec("head_tilt_forward", "head_pitch", -1, 15.0, "head", "the head", "tilts forward"),
    MotionSpec("head_turn_left", "head_yaw", +1, 15.0, "head", "the head", "turns", "to the subject's left"),
    MotionSpec("head_turn_right", "head_yaw", -1, 15.0, "head", "the head", "turns", "to the subject's right"),
    MotionSpec("head_tilt_left", "head_roll", +1, 15.0, "head", "the head", "tilts", "to the subject's left"),
    MotionSpec("head_tilt_right", "head_roll", -1, 15.0, "head", "the head", "tilts", "to the subject's right"),
)
MOTION_BY_NAME = {m.name: m for m in (*MOTIONS, EYE_CLOSURE, *HEAD_MOTIONS)}
# inner and outer brows moving the same way in the same sentence read as "the brows"
BROW_PAIRS = {"inner_brow_raise": "outer_brow_raise", "inner_brow_lower": "outer_brow_lower"}


@dataclass
class Motion:
    """One event of a movement; frames index the input sequence (offset inclusive), magnitudes in IOD
    units (head motions: degrees)."""

    name: str
    region: str
    magnitude: float  # |change| at the peak
    level: str  # slight | clear | marked
    onset_frame: int
    peak_frame: int
    offset_frame: int
    timing: str  # first_half | second_half | throughout
    onset_s: float | None = None
    peak_s: float | None = None
    end_s: float | None = None  # end of the last frame: (offset_frame + 1) / fps


@dataclass
class Description:
    text: str  # the face's movement only
    motions: list[Motion] = field(default_factory=list)
    n_frames: int = 0
    n_valid: int = 0
    baseline: str = "first"
    alignment: str | None = None  # "3d" | "2d"; None without a usable face
    head_text: str = ""  # rigid head motion, when large ("" when none)
    head_motions: list[Motion] = field(default_factory=list)
    blinks: int = 0  # eye closures no longer than a blink (never in the text)
    times: str = "halves"  # "seconds" | "halves": how ``text`` states times

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Detection:
    motions: list[Motion]  # face events, in order of onset
    head_motions: list[Motion]
    n_valid: int
    alignment: str | None
    blinks: int


# ------------------------------------------------------------------------------------- geometry

def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eye-aligned coordinates. landmarks (T,68,2) px -> (q (T,68,2) in IOD units, iod (T,) px)."""
    q, iod, _ = _eye_frame_2d(landmarks)
    return q, iod


def _eye_frame_2d(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """face_frame plus each frame's roll (T,) in degrees (subject's left eye lower is positive)."""
    pts = landmarks.astype(np.float64)
    right_eye = (pts[:, 36] + pts[:, 39]) / 2  # eye corners do not move with the lids
    left_eye = (pts[:, 42] + pts[:, 45]) / 2
    axis = left_eye - right_eye  # (T,2)
    iod = np.linalg.norm(axis, axis=1)
    safe = np.where(iod > 0, iod, 1.0)
    ex = axis / safe[:, None]
    ey = np.stack([-ex[:, 1], ex[:, 0]], axis=1)  # x rotated +90 deg: points down the face in image coords
    rel = pts - ((right_eye + left_eye) / 2)[:, None, :]
    q = np.stack([(rel * ex[:, None]).sum(-1), (rel * ey[:, None]).sum(-1)], axis=-1) / safe[:, None, None]
    return q, iod, np.degrees(np.arctan2(axis[:, 1], axis[:, 0]))


def similarity_fit(src: np.ndarray, dst: np.ndarray, weights: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least-squares similarity per frame (Umeyama): src (T,K,3), dst (K,3), weights (T,K)
    -> scale (T,), rotation (T,3,3), translation (T,3) with ``scale * rotation @ src + translation ≈ dst``."""
    w = weights / weights.sum(1, keepdims=True)
    mu_s = np.einsum("tk,tki->ti", w, src)
    mu_d = w @ dst
    a = src - mu_s[:, None]
    b = dst[None] - mu_d[:, None]
    cov = np.einsum("tk,tki,tkj->tij", w, b, a)
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones((len(src), 3))
    d[:, 2] = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)  # a rotation, never a reflection
    rot = u @ (d[:, :, None] * vt)
    var = np.einsum("tk,tki,tki->t", w, a, a)
    scale = (sv * d).sum(1) / np.where(var > 0, var, 1.0)
    return scale, rot, mu_d - scale[:, None] * np.einsum("tij,tj->ti", rot, mu_s)


def robust_align(points: np.ndarray, reference: np.ndarray, iterations: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Align each frame (T,68,3) to ``reference`` (68,3) on RIGID_POINTS, reweighting points by their
    residual (Cauchy weights at 2x the frame's robust residual scale) -> (aligned (T,68,3), rotation (T,3,3))."""
    src, dst = points[:, RIGID_POINTS], reference[list(RIGID_POINTS)]
    size = np.linalg.norm(dst - dst.mean(0), axis=1).mean()
    w = np.ones(src.shape[:2])
    for _ in range(max(1, iterations)):
        s, rot, t = similarity_fit(src, dst, w)
        fitted = s[:, None, None] * np.einsum("tij,tkj->tki", rot, src) + t[:, None]
        r = np.linalg.norm(fitted - dst, axis=-1)  # (T,K)
        sigma = np.maximum(1.4826 * np.median(r, axis=1, keepdims=True), 1e-3 * size)
        w = 1.0 / (1.0 + (r / (2.0 * sigma)) ** 2)
    aligned = s[:, None, None] * np.einsum("tij,tkj->tki", rot, points) + t[:, None]
    return aligned, rot


def frontal_frame(points: np.ndarray, ref: np.ndarray, iterations: int = DEFAULT_PARAMS.robust_iterations
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """3-D landmarks (V,68,3) px -> (q (V,68,3) in IOD units in the reference's frontal frame,
    head angles {head_pitch, head_yaw, head_roll: (V,) degrees, relative to the reference}).

    ``ref`` indexes the frames whose median aligned face is the reference (the baseline frames).
    """
    first, _ = robust_align(points, points[ref[0]], iterations)
    reference = np.median(first[ref], axis=0)
    aligned, rot = robust_align(points, reference, iterations)
    right_eye = reference[[36, 39]].mean(0)
    left_eye = reference[[42, 45]].mean(0)
    ex = (left_eye - right_eye) / np.linalg.norm(left_eye - right_eye)
    ey = np.array([0.0, 1.0, 0.0]) - ex[1] * ex  # the image's down axis, made orthogonal to the eye line
    ey /= np.linalg.norm(ey)
    basis = np.stack([ex, ey, np.cross(ex, ey)])  # rows: the frontal axes in camera coordinates
    iod = np.linalg.norm(left_eye - right_eye)
    q = (aligned - (right_eye + left_eye) / 2) @ basis.T / iod
    # head rotation relative to the reference: the inverse of each frame's alignment, in the frontal axes
    head = basis @ np.transpose(rot, (0, 2, 1)) @ basis.T
    nose = head @ np.array([0.0, 0.0, -1.0])  # where the face looks (towards the camera at the reference)
    eye_line = head @ np.array([1.0, 0.0, 0.0])
    angles = {"head_pitch": np.degrees(np.arctan2(-nose[:, 1], -nose[:, 2])),
              "head_yaw": np.degrees(np.arctan2(nose[:, 0], -nose[:, 2])),
              "head_roll": np.degrees(np.arctan2(eye_line[:, 1], eye_line[:, 0]))}
    return q, angles


def _dist(q: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(q[:, a, :2] - q[:, b, :2], axis=-1)


def signals_from_frame(q: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame action-unit-like signals from face-frame coordinates q (T,68,2 or 3), IOD units."""
    y = q[..., 1]  # below the eye line is positive
    return {
        "inner_brow_height": -(y[:, 21] + y[:, 22]) / 2,
        "outer_brow_height": -(y[:, 17] + y[:, 26]) / 2,
        "brow_gap": q[:, 22, 0] - q[:, 21, 0],
        "eye_opening": (_dist(q, 37, 41) + _dist(q, 38, 40) + _dist(q, 43, 47) + _dist(q, 44, 46)) / 4,
        "lip_corner_height": -(y[:, 48] + y[:, 54]) / 2,
        "mouth_width": _dist(q, 48, 54),
        "mouth_opening": (_dist(q, 61, 67) + _dist(q, 62, 66) + _dist(q, 63, 65)) / 3,
        "chin_drop": y[:, 8],
        "lip_thickness": _dist(q, 51, 62) + _dist(q, 57, 66),
        "nose_height": -y[:, 31:36].mean(axis=1),
        "nose_to_lip": y[:, 51] - y[:, 33],
    }


def face_signals(landmarks: np.ndarray, depth: np.ndarray | None, ref: np.ndarray,
                 iterations: int = DEFAULT_PARAMS.robust_iterations
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str]:
    """Usable frames only: landmarks (V,68,2), depth (V,68) or None, ref = reference frame positions
    -> (face signals, head angles in degrees, "3d" | "2d")."""
    if depth is not None:
        q, head = frontal_frame(np.concatenate([landmarks, depth[..., None]], -1).astype(np.float64), ref,
                                iterations)
        return signals_from_frame(q), head, "3d"
    q, _, roll = _eye_frame_2d(landmarks)
    return signals_from_frame(q), {"head_roll": roll}, "2d"


def measure_signals(landmarks: np.ndarray, depth: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-frame face signals, in IOD units. landmarks (T,68,2), depth (T,68) or None -> {name: (T,)}.
    With depth, frames are aligned in 3-D to the first frame."""
    return face_signals(np.asarray(landmarks), None if depth is None else np.asarray(depth), np.array([0]))[0]


# ------------------------------------------------------------------------------------- events

def _level(magnitude: float, threshold: float) -> str:
    chosen = LEVELS[0][0]
    for name, mult, _ in LEVELS:
        if magnitude >= mult * threshold:
            chosen = name
    return chosen


def _timing(onset: int, offset: int, n_frames: int, span_needed: float) -> str:
    span = max(n_frames - 1, 1)
    a, b = onset / span, offset / span
    if b - a >= span_needed:
        return "throughout"
    return "first_half" if (a + b) / 2 < 0.5 else "second_half"


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True in a 1-D bool array -> [(first, last)]."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1))


def _merge(runs: list[tuple[int, int]], frames: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Join runs (positions into ``frames``, the input frame of each position) closer than min_gap frames."""
    out: list[tuple[int, int]] = []
    for lo, hi in runs:
        if out and frames[lo] - frames[out[-1][1]] - 1 < min_gap:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def find_events(change: np.ndarray, threshold: float, frames: np.ndarray, *, exit_fraction: float,
                min_frames: int, min_gap: int) -> list[tuple[int, int]]:
    """Events of a change signal (V,) -> [(first, last)] positions of each event's frames at or above the
    threshold (rule 3 of the module doc: hysteresis runs decide what is one event)."""
    high = change >= threshold
    kept = [(lo, hi) for lo, hi in _runs(change >= exit_fraction * threshold) if high[lo:hi + 1].sum() >= min_frames]
    events = []
    for lo, hi in _merge(kept, frames, min_gap):
        over = lo + np.flatnonzero(high[lo:hi + 1])
        events.append((int(over[0]), int(over[-1])))
    return events


@dataclass(frozen=True)
class _Clock:
    """Frame indices to times and durations to frame counts for one clip."""

    frames: np.ndarray  # (V,) input frame of each usable frame
    n_frames: int
    fps: float | None
    params: DescriberParams

    def count(self, seconds: float, least: int = 1) -> int:
        return max(least, math.ceil(seconds * (self.fps or self.params.assumed_fps) - 1e-9))

    def motion(self, spec: MotionSpec, lo: int, peak: int, hi: int, magnitude: float, level: str) -> Motion:
        onset, pk, offset = (int(self.frames[i]) for i in (lo, peak, hi))
        sec = (lambda f: None) if self.fps is None else (lambda f: round(f / self.fps, 3))
        return Motion(name=spec.name, region=spec.region, magnitude=round(float(magnitude), 4), level=level,
                      onset_frame=onset, peak_frame=pk, offset_frame=offset,
                      timing=_timing(onset, offset, self.n_frames, self.params.throughout_span),
                      onset_s=sec(onset), peak_s=sec(pk), end_s=sec(offset + 1))


def _smooth(s: np.ndarray, width: int) -> np.ndarray:
    return median_filter(s, size=width, mode="nearest") if width >= 3 else s


def _signal_events(specs, signals, clock: _Clock, ref: np.ndarray, width: int) -> list[Motion]:
    p = clock.params
    out = []
    for spec in specs:
        if spec.signal not in signals:
            continue
        s = _smooth(signals[spec.signal], width)
        d = spec.direction * (s - np.median(s[ref]))  # (V,) change in the motion's direction
        for lo, hi in find_events(d, spec.threshold, clock.frames, exit_fraction=p.exit_fraction,
                                  min_frames=clock.count(p.min_event_s, 2), min_gap=clock.count(p.min_gap_s)):
            peak = lo + int(np.argmax(d[lo:hi + 1]))
            out.append(clock.motion(spec, lo, peak, hi, d[peak], _level(float(d[peak]), spec.threshold)))
    return out


def _eye_closures(opening: np.ndarray, clock: _Clock) -> tuple[list[Motion], list[tuple[int, int]]]:
    """Rule 4: (closure events, blink spans) from the raw lid opening (V,)."""
    p = clock.params
    o = _smooth(opening, 3)
    open_ref = float(np.percentile(o, p.open_percentile))
    if open_ref <= 0:
        return [], []
    closures, blinks = [], []
    shut = o <= p.closed_ratio * open_ref
    for lo, hi in _runs(o <= p.reopen_ratio * open_ref):
        over = lo + np.flatnonzero(shut[lo:hi + 1])
        if not len(over):
            continue
        lo, hi = int(over[0]), int(over[-1])
        seconds = (clock.frames[hi] - clock.frames[lo] + 1) / (clock.fps or p.assumed_fps)
        if seconds <= p.blink_max_s:
            blinks.append((lo, hi))
            continue
        peak = lo + int(np.argmin(o[lo:hi + 1]))
        closures.append(clock.motion(EYE_CLOSURE, lo, peak, hi, open_ref - o[peak], "clear"))
    return closures, blinks


def _overlaps(m: Motion, others: list[Motion], margin: int = 0) -> bool:
    return any(m.onset_frame <= o.offset_frame + margin and o.onset_frame <= m.offset_frame + margin for o in others)


def detect_motions(
    landmarks: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    depth: np.ndarray | None = None,
    fps: float | None = None,
    baseline: str = "first",
    smooth_frames: int | None = None,
    params: DescriberParams = DEFAULT_PARAMS,
) -> Detection:
    """Events over a landmark sequence. landmarks (T,68,2) px, valid (T,) bool, depth (T,68) or None.

    baseline "first": the median of the first ``params.baseline_frames`` valid frames (at most 20 %);
    "median": the median over all valid frames (for clips that start mid-expression).
    ``smooth_frames`` (odd) overrides the temporal median window (``params.smooth_s``).
    Invalid frames (and frames with non-finite landmarks or zero eye distance) are skipped: signals
    are smoothed and compared over the usable frames only, and reported frame indices are the input's.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (T, 68, 2), got {tuple(landmarks.shape)}")
    T = landmarks.shape[0]
    valid = np.ones(T, bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != (T,):
        raise ValueError(f"valid must be ({T},) to match the landmarks, got {tuple(valid.shape)}")
    if depth is not None:
        depth = np.asarray(depth)
        if depth.shape != (T, 68):
            raise ValueError(f"depth must be ({T}, 68) to match the landmarks, got {tuple(depth.shape)}")
    if baseline not in ("first", "median"):
        raise ValueError(f"baseline must be 'first' or 'median', got {baseline!r}")
    finite = np.isfinite(landmarks).all(axis=(1, 2))
    ok = valid & finite
    if ok.any():
        _, iod = face_frame(np.where(finite[:, None, None], landmarks, 0.0))
        ok &= iod > 1e-6
    idx = np.flatnonzero(ok)  # (V,) input frame index of each usable frame
    n_valid = len(idx)
    if n_valid < 2:
        return Detection([], [], n_valid, None, 0)

    use_depth = depth is not None and bool(np.isfinite(depth[idx]).all())
    k = max(1, min(params.baseline_frames, math.ceil(0.2 * n_valid)))
    ref = np.arange(k) if baseline == "first" else np.arange(n_valid)
    signals, head, alignment = face_signals(landmarks[idx], depth[idx] if use_depth else None, ref,
                                            params.robust_iterations)
    clock = _Clock(idx, T, fps, params)
    if smooth_frames is None:
        smooth_frames = max(3, 2 * int(params.smooth_s * (fps or params.assumed_fps) / 2) + 1)
    width = min(smooth_frames, n_valid if n_valid % 2 else n_valid - 1)

    motions = _signal_events(MOTIONS, signals, clock, ref, width)
    closures, blinks = _eye_closures(signals["eye_opening"], clock)
    blink_spans = [clock.motion(EYE_CLOSURE, lo, lo, hi, 0.0, "clear") for lo, hi in blinks]
    # a closure or blink is not a narrowing; opening the mouth stretches the red lips thin: not a press
    motions = [m for m in motions if not (m.name == "eyes_narrow" and _overlaps(m, closures + blink_spans))]
    opening = [m for m in motions if m.name in ("mouth_open", "jaw_drop")]
    gap = clock.count(params.min_gap_s)
    motions = [m for m in motions if not (m.name == "lip_press" and _overlaps(m, opening, gap))]
    motions = sorted(motions + closures, key=lambda m: (m.onset_frame, m.peak_frame))
    head_motions = sorted(_signal_events(HEAD_MOTIONS, head, clock, ref, width), key=lambda m: m.onset_frame)
    return Detection(motions, head_motions, n_valid, alignment, len(blinks))


# ------------------------------------------------------------------------------------- text

def _count_word(n: int) -> str:
    return "" if n == 1 else COUNT_WORDS.get(n, f"{n} times")


def _phrase(spec: MotionSpec, level: str, count: int = 1, subject: str | None = None) -> tuple[str, str]:
    """(subject, predicate): ("the head", "turns slightly to the subject's left twice")."""
    words = [spec.verb, ADVERBS[level], spec.tail, _count_word(count)]
    return subject or spec.subject, " ".join(w for w in words if w)


def _join(phrases: list[tuple[str, str]]) -> str:
    """Clauses joined by commas and a final "and"; a subject repeated from the clause before is left out."""
    parts = [pred if i and subj == phrases[i - 1][0] else f"{subj} {pred}" for i, (subj, pred) in enumerate(phrases)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _strength(m: Motion) -> float:
    return m.magnitude / MOTION_BY_NAME[m.name].threshold


def _group_phrases(group: list[Motion]) -> list[tuple[str, str]]:
    """Phrases of one sentence: one per motion (with its count); inner and outer brows moving the same
    way as often read as "the brows", at the inner brows' place."""
    by_name: dict[str, list[Motion]] = {}
    for m in group:
        by_name.setdefault(m.name, []).append(m)
    merged = {outer for inner, outer in BROW_PAIRS.items()
              if inner in by_name and len(by_name.get(outer, [])) == len(by_name[inner])}
    phrases = []
    for name, events in by_name.items():
        if name in merged:
            continue
        spec = MOTION_BY_NAME[name]
        if BROW_PAIRS.get(name) in merged:
            strongest = max(events + by_name[BROW_PAIRS[name]], key=_strength)
            phrases.append(_phrase(spec, strongest.level, len(events), subject="the brows"))
        else:
            phrases.append(_phrase(spec, max(events, key=_strength).level, len(events)))
    return phrases


def _seconds(x: float) -> str:
    return f"{x:.1f} s"


def _groups_in_seconds(motions: list[Motion], p: DescriberParams) -> list[tuple[str, list[Motion]]]:
    """(time phrase, events) per sentence: events that start and end together share one, frequent motions
    are counted."""
    counts: dict[str, int] = {}
    for m in motions:
        counts[m.name] = counts.get(m.name, 0) + 1
    groups: list[tuple[list[float], list[Motion], bool]] = []  # ([start, end], events, counted)
    for name in dict.fromkeys(m.name for m in motions if counts[m.name] > p.max_listed_events):
        events = [m for m in motions if m.name == name]
        groups.append(([events[0].onset_s, events[-1].end_s], events, True))
    for m in motions:
        if counts[m.name] > p.max_listed_events:
            continue
        home = next((g for g in groups if not g[2] and all(
            abs(o.onset_s - m.onset_s) < p.min_gap_s and abs(o.end_s - m.end_s) < p.min_gap_s for o in g[1])), None)
        if home is None:
            groups.append(([m.onset_s, m.end_s], [m], False))
        else:
            home[0][:] = [min(home[0][0], m.onset_s), max(home[0][1], m.end_s)]
            home[1].append(m)
    groups.sort(key=lambda g: g[0][0])
    return [((f"between {_seconds(a)} and {_seconds(b)}" if counted else f"from {_seconds(a)} to {_seconds(b)}"),
             events) for (a, b), events, counted in groups]


def motions_to_text(motions: list[Motion], seconds: bool = False, params: DescriberParams = DEFAULT_PARAMS,
                    empty: str = STILL_TEXT) -> str:
    """One sentence per time phrase, in order of first onset, no emotion words.

    ``seconds``: times in seconds (every event needs onset_s/end_s), else the clip's halves."""
    if not motions:
        return empty
    motions = sorted(motions, key=lambda m: (m.onset_frame, m.peak_frame))
    if seconds:
        groups = _groups_in_seconds(motions, params)
    else:
        by_timing: dict[str, list[Motion]] = {}
        for m in motions:
            by_timing.setdefault(m.timing, []).append(m)
        groups = [(TIMING_PHRASES[t], events) for t, events in by_timing.items()]
    sentences = []
    for when, events in groups:
        sentence = f"{_join(_group_phrases(events))} {when}."
        sentences.append(sentence[0].upper() + sentence[1:])
    return " ".join(sentences)


def describe_landmarks(
    landmarks: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    depth: np.ndarray | None = None,
    fps: float | None = None,
    baseline: str = "first",
    params: DescriberParams = DEFAULT_PARAMS,
) -> Description:
    """English description of the facial movement in landmarks (T,68,2) px, valid (T,), depth (T,68)."""
    det = detect_motions(landmarks, valid, depth=depth, fps=fps, baseline=baseline, params=params)
    T = int(np.asarray(landmarks).shape[0])
    seconds = fps is not None and T / fps >= params.seconds_from_s
    text = NO_FACE_TEXT if det.n_valid == 0 else motions_to_text(det.motions, seconds, params)
    head_text = motions_to_text(det.head_motions, seconds, params, empty="")
    return Description(text=text, motions=det.motions, n_frames=T, n_valid=det.n_valid, baseline=baseline,
                       alignment=det.alignment, head_text=head_text, head_motions=det.head_motions,
                       blinks=det.blinks, times="seconds" if seconds else "halves")
