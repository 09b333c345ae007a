"""Index tables: MediaPipe 468-point face mesh → 68-point iBUG/300-W, LaPa label ids, flip tables.

Side conventions (read this before touching a table):
- iBUG/300-W names sides from the *subject's* point of view: 17–21 is the subject's RIGHT brow, which
  lies on the IMAGE-LEFT of a frontal, non-mirrored photo; 36–41 is the subject's right eye (image-left).
- MediaPipe does the same: ``FACEMESH_RIGHT_EYE`` (33, 133, …) is the subject's right eye, image-left.
- LaPa ids 2/3 ("left/right eyebrow") and 4/5 ("left/right eye"): LaPa names them from the viewer's side
  (facer's LaPa label list calls id 2 'rb' = subject's right brow), so id 2 is the IMAGE-LEFT brow and
  pairs with iBUG 17–21, id 4 the image-left eye with iBUG 36–41. If a FaceXFormer checkpoint turns out
  to use the other convention, swap once at its output with ``PARSING_FLIP_LUT``.

All mesh polygons below are ordered loops (checked against mediapipe's FACEMESH_* edge sets in
tests/test_face_layout.py).
"""
from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------
# LaPa 11-class ids
BACKGROUND, SKIN, LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, NOSE, UPPER_LIP, INNER_MOUTH, LOWER_LIP, HAIR = range(11)
LAPA_NAMES = ("background", "skin", "left_brow", "right_brow", "left_eye", "right_eye", "nose",
              "upper_lip", "inner_mouth", "lower_lip", "hair")
NUM_PARSING_CLASSES = 11

# Horizontal flip of a label map: the image-left brow/eye becomes the image-right one.
PARSING_FLIP_LUT = np.arange(256, dtype=np.uint8)
PARSING_FLIP_LUT[[LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE]] = [RIGHT_BROW, LEFT_BROW, RIGHT_EYE, LEFT_EYE]

# ---------------------------------------------------------------------------------------------
# iBUG 68: regions (name, index range, closed polyline?)
IBUG_REGIONS: tuple[tuple[str, range, bool], ...] = (
    ("jaw", range(0, 17), False),          # image-left ear level → chin (8) → image-right
    ("right_brow", range(17, 22), False),  # subject's right = image-left; outer (17) → inner (21)
    ("left_brow", range(22, 27), False),   # inner (22) → outer (26)
    ("nose_bridge", range(27, 31), False), # top (27) → tip (30)
    ("lower_nose", range(31, 36), False),  # image-left ala (31) → subnasale (33) → image-right ala (35)
    ("right_eye", range(36, 42), True),    # image-left eye: outer corner 36, upper lid 37-38, inner 39, lower 40-41
    ("left_eye", range(42, 48), True),     # inner corner 42, upper 43-44, outer 45, lower 46-47
    ("outer_lip", range(48, 60), True),    # image-left corner 48, upper lip → 54, lower lip back to 59
    ("inner_lip", range(60, 68), True),    # inner corners 60 / 64, upper 61-63, lower 65-67
)

# MediaPipe mesh index of each iBUG point (468-point mesh).
MESH_TO_68 = np.array([
    # jaw 0–16: the face-oval contour from the image-left ear level down to the chin (152) and up again
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,
    # right brow 17–21 (image-left): upper edge of FACEMESH_RIGHT_EYEBROW, outer → inner
    70, 63, 105, 66, 107,
    # left brow 22–26 (image-right): upper edge of FACEMESH_LEFT_EYEBROW, inner → outer
    336, 296, 334, 293, 300,
    # nose bridge 27–30: between the eyes → just above the tip
    168, 197, 5, 4,
    # lower nose 31–35: ala, nostril, subnasale (2), nostril, ala
    75, 97, 2, 326, 305,
    # right eye 36–41 (image-left): outer corner 33, upper lid 160 158, inner corner 133, lower lid 153 144
    33, 160, 158, 133, 153, 144,
    # left eye 42–47 (image-right): inner corner 362, upper lid 385 387, outer corner 263, lower lid 373 380
    362, 385, 387, 263, 373, 380,
    # outer lip 48–59: corner 61, upper lip 40 37 0 267 270, corner 291, lower lip 321 314 17 84 91
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # inner lip 60–67: corner 78, upper 81 13 311, corner 308, lower 402 14 178
    78, 81, 13, 311, 308, 402, 14, 178,
], dtype=np.int64)
assert MESH_TO_68.shape == (68,)


def _ibug_flip() -> np.ndarray:
    """Permutation p with flipped[i] = mirrored(original[p[i]]): each point takes its mirror partner."""
    pairs = [(i, 16 - i) for i in range(8)]                       # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]                 # brows
    pairs += [(31, 35), (32, 34)]                                  # lower nose
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]    # outer lip
    pairs += [(60, 64), (61, 63), (65, 67)]                        # inner lip
    perm = np.arange(68)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


FLIP_68 = _ibug_flip()

# ---------------------------------------------------------------------------------------------
# Mesh polygons for the LaPa label map (ordered loops of mesh indices)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
# brows: upper edge outer → inner, then lower edge inner → outer
RIGHT_BROW_POLY = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)        # subject's right, image-left
LEFT_BROW_POLY = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)  # image-right
# eyes: upper lid corner → corner, then lower lid back
RIGHT_EYE_POLY = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE_POLY = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
# nose: bridge top (168), down the image-left flank to the ala and nostril, across the base, back up
NOSE_POLY = (168, 122, 196, 3, 51, 134, 131, 115, 48, 64, 98, 97, 2,
             326, 327, 294, 278, 344, 360, 363, 281, 248, 419, 351)
_OUTER_UPPER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
_OUTER_LOWER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
_INNER_UPPER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
_INNER_LOWER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_LIP_POLY = _OUTER_UPPER + _INNER_UPPER[::-1]
LOWER_LIP_POLY = _OUTER_LOWER + _INNER_LOWER[::-1]
INNER_MOUTH_POLY = _INNER_UPPER + _INNER_LOWER[::-1][1:-1]

# Painting order: later polygons overwrite earlier ones (skin first, inner mouth last).
PARSING_POLYGONS: tuple[tuple[int, tuple[int, ...]], ...] = (
    (SKIN, FACE_OVAL),
    (LEFT_BROW, RIGHT_BROW_POLY),   # LaPa "left" = image-left = subject's right (see module doc)
    (RIGHT_BROW, LEFT_BROW_POLY),
    (LEFT_EYE, RIGHT_EYE_POLY),
    (RIGHT_EYE, LEFT_EYE_POLY),
    (NOSE, NOSE_POLY),
    (UPPER_LIP, UPPER_LIP_POLY),
    (LOWER_LIP, LOWER_LIP_POLY),
    (INNER_MOUTH, INNER_MOUTH_POLY),
)
