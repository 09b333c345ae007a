"""Label-free descriptions of facial movement from a 68-point landmark sequence (the `landmarks` backend).

Each frame is put in an eye-aligned face frame (origin between the eyes, x along the eye line, y down,
unit = inter-ocular distance, IOD), so head translation, in-plane rotation and scale cancel. From it we
measure action-unit-like signals, smooth them over time (median filter, which removes blinks and
single-frame jitter), subtract a neutral reference, and report every motion whose change passes its
threshold, with when it happens. The text never names an emotion: it says what moved and how much.

Landmark order is iBUG/300-W: 0-16 jaw, 17-21 subject's right brow (image-left), 22-26 left brow,
27-30 nose bridge, 31-35 lower nose, 36-41 right eye, 42-47 left eye, 48-59 outer lip, 60-67 inner lip.

Thresholds (change from the reference, in IOD units; "slight" from 1x, "clear" from 2x, "marked"
from 4x the threshold). IOD is the distance between the two eye centres (corner midpoints), about
60 px on a 224 px face crop, so 0.03 IOD is about 2 px:

| motion              | signal (IOD)                                          | direction | threshold |
|---------------------|-------------------------------------------------------|-----------|-----------|
| inner_brow_raise    | height of inner brow ends (21, 22) above the eye line | +         | 0.04      |
| inner_brow_lower    | same                                                  | -         | 0.04      |
| outer_brow_raise    | height of outer brow ends (17, 26) above the eye line | +         | 0.04      |
| outer_brow_lower    | same                                                  | -         | 0.04      |
| brows_together      | horizontal gap between inner brow ends (21, 22)       | -         | 0.03      |
| eyes_widen          | lid opening (37-41, 38-40, 43-47, 44-46), both eyes   | +         | 0.02      |
| eyes_narrow         | same (lid tightening)                                 | -         | 0.02      |
| lip_corner_pull     | height of the mouth corners (48, 54), up is positive  | +         | 0.03      |
| lip_corner_depress  | same                                                  | -         | 0.03      |
| lip_stretch         | mouth width 48-54                                     | +         | 0.04      |
| mouth_open          | inner-lip gap (61-67, 62-66, 63-65)                   | +         | 0.05      |
| mouth_close         | same                                                  | -         | 0.05      |
| jaw_drop            | chin (8) below the eye line                           | +         | 0.05      |
| lip_press           | red-lip thickness 51-62 + 57-66 (not while opening)   | -         | 0.03      |
| nose_wrinkle        | height of the lower nose (31-35), up is positive      | +         | 0.025     |
| upper_lip_raise     | nose base (33) to upper lip (51) distance             | -         | 0.03      |

A motion also needs ``min_active`` frames over its threshold (2, or 10 % of the valid frames).
Timing: the contiguous run of over-threshold frames around the peak spans ``[onset, offset]``; it is
"throughout the clip" when it covers at least 60 % of the clip, otherwise the half holding its centre.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import median_filter

# Level multipliers of a motion's threshold and the adverb each adds to the sentence.
LEVELS = (("slight", 1.0, "slightly"), ("clear", 2.0, ""), ("marked", 4.0, "markedly"))
THROUGHOUT_SPAN = 0.6  # fraction of the clip an active run must cover to be "throughout"
TIMING_PHRASES = {
    "first_half": "in the first half of the clip",
    "second_half": "in the second half of the clip",
    "throughout": "throughout the clip",
}
STILL_TEXT = "No clear facial movement is visible in the clip."
NO_FACE_TEXT = "No face is visible in the clip."


@dataclass(frozen=True)
class MotionSpec:
    name: str
    signal: str
    direction: int  # +1: the signal grows, -1: it shrinks
    threshold: float  # IOD units
    region: str
    subject: str  # plural subjects take plural verbs: "the brows rise"
    verb: str


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
MOTION_BY_NAME = {m.name: m for m in MOTIONS}


@dataclass
class Motion:
    """One detected movement; frames index the input sequence, magnitudes are in IOD units."""

    name: str
    region: str
    magnitude: float  # |change| at the peak, IOD units
    level: str  # slight | clear | marked
    onset_frame: int
    peak_frame: int
    offset_frame: int
    timing: str  # first_half | second_half | throughout
    onset_s: float | None = None
    peak_s: float | None = None


@dataclass
class Description:
    text: str
    motions: list[Motion] = field(default_factory=list)
    n_frames: int = 0
    n_valid: int = 0
    baseline: str = "first"

    def to_dict(self) -> dict:
        return asdict(self)


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eye-aligned coordinates. landmarks (T,68,2) px -> (q (T,68,2) in IOD units, iod (T,) px)."""
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
    return q, iod


def _dist(q: np.ndarray, a: int, b: int) -> np.ndarray:
    return np.linalg.norm(q[:, a] - q[:, b], axis=-1)


def measure_signals(landmarks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame action-unit-like signals, in IOD units. landmarks (T,68,2) -> {name: (T,)}."""
    q, _ = face_frame(landmarks)
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


def _level(magnitude: float, threshold: float) -> tuple[str, str]:
    chosen = LEVELS[0]
    for level in LEVELS:
        if magnitude >= level[1] * threshold:
            chosen = level
    return chosen[0], chosen[2]


def _timing(onset: int, offset: int, n_frames: int) -> str:
    span = max(n_frames - 1, 1)
    a, b = onset / span, offset / span
    if b - a >= THROUGHOUT_SPAN:
        return "throughout"
    return "first_half" if (a + b) / 2 < 0.5 else "second_half"


def _active_run(active: np.ndarray, peak: int) -> tuple[int, int]:
    """Contiguous run of True around ``peak`` in a 1-D bool array -> (first, last)."""
    lo = peak
    while lo > 0 and active[lo - 1]:
        lo -= 1
    hi = peak
    while hi < len(active) - 1 and active[hi + 1]:
        hi += 1
    return lo, hi


def detect_motions(
    landmarks: np.ndarray,
    valid: np.ndarray | None = None,
    fps: float | None = None,
    baseline: str = "first",
    baseline_frames: int = 5,
    smooth_frames: int | None = None,
) -> tuple[list[Motion], int]:
    """Motions over a landmark sequence. landmarks (T,68,2) px, valid (T,) bool -> (motions, n_valid).

    baseline "first": the median of the first ``baseline_frames`` valid frames (at most 20 % of them);
    baseline "median": the median over all valid frames (for clips that start mid-expression).
    ``smooth_frames`` (odd) is the temporal median window; by default 0.25 s at ``fps`` (7 frames at
    25 fps, removing blinks of up to 3 frames), or 5 frames when fps is unknown.
    Invalid frames (and frames with non-finite landmarks or zero eye distance) are skipped: signals
    are smoothed and compared over the valid frames only, and reported frame indices are the input's.
    """
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (T, 68, 2), got {tuple(landmarks.shape)}")
    T = landmarks.shape[0]
    valid = np.ones(T, bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != (T,):
        raise ValueError(f"valid must be ({T},) to match the landmarks, got {tuple(valid.shape)}")
    if baseline not in ("first", "median"):
        raise ValueError(f"baseline must be 'first' or 'median', got {baseline!r}")
    finite = np.isfinite(landmarks).all(axis=(1, 2))
    ok = valid & finite
    if ok.any():
        _, iod = face_frame(np.where(finite[:, None, None], landmarks, 0.0))
        ok &= iod > 1e-6
    idx = np.flatnonzero(ok)  # (V,) input frame index of each valid frame
    n_valid = len(idx)
    if n_valid < 2:
        return [], n_valid

    signals = measure_signals(landmarks[idx])
    if smooth_frames is None:
        smooth_frames = 5 if fps is None else max(3, 2 * round(0.125 * fps) + 1)
    width = min(smooth_frames, n_valid if n_valid % 2 else n_valid - 1)
    min_active = max(2, math.ceil(0.1 * n_valid))
    k = max(1, min(baseline_frames, math.ceil(0.2 * n_valid)))
    motions: list[Motion] = []
    for spec in MOTIONS:
        s = signals[spec.signal]
        if width >= 3:
            s = median_filter(s, size=width, mode="nearest")
        ref = np.median(s[:k]) if baseline == "first" else np.median(s)
        d = spec.direction * (s - ref)  # (V,) change in the motion's direction
        active = d >= spec.threshold
        if active.sum() < min_active:
            continue
        peak = int(np.argmax(d))
        lo, hi = _active_run(active, peak)
        level, _ = _level(float(d[peak]), spec.threshold)
        onset, pk, offset = int(idx[lo]), int(idx[peak]), int(idx[hi])
        motions.append(
            Motion(
                name=spec.name,
                region=spec.region,
                magnitude=round(float(d[peak]), 4),
                level=level,
                onset_frame=onset,
                peak_frame=pk,
                offset_frame=offset,
                timing=_timing(onset, offset, T),
                onset_s=None if fps is None else round(onset / fps, 3),
                peak_s=None if fps is None else round(pk / fps, 3),
            )
        )
    names = {m.name for m in motions}
    if "mouth_open" in names or "jaw_drop" in names:
        # opening the mouth stretches the red lips thin; that is not a press
        motions = [m for m in motions if m.name != "lip_press"]
    return motions, n_valid


def _phrase(spec: MotionSpec, adverb: str) -> str:
    return f"{spec.subject} {spec.verb}" + (f" {adverb}" if adverb else "")


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def motions_to_text(motions: list[Motion]) -> str:
    """One sentence per timing group, groups in order of their first onset, no emotion words."""
    if not motions:
        return STILL_TEXT
    groups: dict[str, list[Motion]] = {}
    for m in sorted(motions, key=lambda m: (m.onset_frame, m.peak_frame)):
        groups.setdefault(m.timing, []).append(m)
    sentences = []
    for timing, group in groups.items():
        by_name = {m.name: m for m in group}
        phrases = []
        for m in group:
            spec = MOTION_BY_NAME[m.name]
            # inner and outer brows moving the same way together read as "the brows"
            pair = {"inner_brow_raise": "outer_brow_raise", "inner_brow_lower": "outer_brow_lower"}
            if m.name in pair and pair[m.name] in by_name:
                other = by_name[pair[m.name]]
                strongest = max((m, other), key=lambda x: x.magnitude / MOTION_BY_NAME[x.name].threshold)
                adverb = _level(strongest.magnitude, MOTION_BY_NAME[strongest.name].threshold)[1]
                phrases.append(f"the brows {spec.verb}" + (f" {adverb}" if adverb else ""))
                continue
            if m.name in pair.values() and {k for k, v in pair.items() if v == m.name} & by_name.keys():
                continue  # merged with its inner partner above
            phrases.append(_phrase(spec, _level(m.magnitude, spec.threshold)[1]))
        sentence = f"{_join(phrases)} {TIMING_PHRASES[timing]}."
        sentences.append(sentence[0].upper() + sentence[1:])
    return " ".join(sentences)


def describe_landmarks(
    landmarks: np.ndarray,
    valid: np.ndarray | None = None,
    fps: float | None = None,
    baseline: str = "first",
) -> Description:
    """English description of the facial movement in a landmark sequence (T,68,2) px, valid (T,)."""
    motions, n_valid = detect_motions(landmarks, valid, fps=fps, baseline=baseline)
    T = int(np.asarray(landmarks).shape[0])
    text = NO_FACE_TEXT if n_valid == 0 else motions_to_text(motions)
    return Description(text=text, motions=motions, n_frames=T, n_valid=n_valid, baseline=baseline)
