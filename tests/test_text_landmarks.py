"""The landmarks backend names synthetic motions (what, how much, when) and nothing else."""
import re

import numpy as np
import pytest

from finecliper.text.landmark_describer import (
    MOTIONS,
    NO_FACE_TEXT,
    STILL_TEXT,
    describe_landmarks,
    detect_motions,
    measure_signals,
)
from finecliper.text.refine import find_emotion_words, refine_description

# A mean 68-point iBUG face in a unit box (the widely used dlib/OpenFace alignment template).
TEMPLATE = np.array([
    (0.0792, 0.3392), (0.0829, 0.4570), (0.0968, 0.5756), (0.1221, 0.6919), (0.1687, 0.8003),
    (0.2398, 0.8957), (0.3257, 0.9771), (0.4223, 1.0433), (0.5318, 1.0608), (0.6413, 1.0398),
    (0.7381, 0.9723), (0.8244, 0.8896), (0.8948, 0.7925), (0.9394, 0.6815), (0.9611, 0.5622),
    (0.9706, 0.4418), (0.9712, 0.3221), (0.1638, 0.2492), (0.2178, 0.2043), (0.2913, 0.1924),
    (0.3675, 0.2036), (0.4393, 0.2331), (0.5864, 0.2281), (0.6602, 0.1959), (0.7375, 0.1824),
    (0.8132, 0.1928), (0.8708, 0.2353), (0.5153, 0.3186), (0.5162, 0.3962), (0.5171, 0.4738),
    (0.5182, 0.5532), (0.4337, 0.6041), (0.4755, 0.6208), (0.5207, 0.6343), (0.5659, 0.6188),
    (0.6071, 0.6016), (0.2524, 0.3311), (0.2987, 0.3026), (0.3557, 0.3030), (0.4037, 0.3387),
    (0.3525, 0.3500), (0.2968, 0.3505), (0.6269, 0.3374), (0.6736, 0.3005), (0.7306, 0.3013),
    (0.7762, 0.3284), (0.7327, 0.3474), (0.6764, 0.3470), (0.3452, 0.7820), (0.4003, 0.7140),
    (0.4710, 0.6856), (0.5216, 0.7003), (0.5716, 0.6856), (0.6396, 0.7128), (0.6875, 0.7788),
    (0.6409, 0.8324), (0.5855, 0.8621), (0.5225, 0.8691), (0.4612, 0.8624), (0.4028, 0.8331),
    (0.3680, 0.7841), (0.4683, 0.7472), (0.5217, 0.7490), (0.5751, 0.7482), (0.6773, 0.7799),
    (0.5754, 0.7922), (0.5217, 0.7984), (0.4682, 0.7927),
])
SCALE, OFFSET = 150.0, 40.0  # px
IOD = SCALE * np.linalg.norm(TEMPLATE[[42, 45]].mean(0) - TEMPLATE[[36, 39]].mean(0))

INNER_BROWS, OUTER_BROWS, ALL_BROWS = [20, 21, 22, 23], [17, 18, 25, 26], list(range(17, 27))
CORNERS = [48, 54, 60, 64]
LOWER_JAW_AND_LIP = list(range(5, 12)) + list(range(55, 60)) + [65, 66, 67]


def sequence(T=32, noise=0.004, seed=0, rotate_deg=0.0):
    """A still face (T,68,2) in px with landmark jitter of ``noise`` IOD and a fixed head roll."""
    rng = np.random.default_rng(seed)
    base = TEMPLATE * SCALE + OFFSET
    th = np.deg2rad(rotate_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    base = (base - base.mean(0)) @ rot.T + base.mean(0)
    seq = np.repeat(base[None], T, axis=0)
    return seq + rng.normal(0, noise * IOD, seq.shape), rot


def move(seq, rot, points, frames, dx=0.0, dy=0.0):
    """Shift ``points`` by (dx, dy) IOD (face axes, +y down) on ``frames``."""
    shift = rot @ np.array([dx, dy]) * IOD
    out = seq.copy()
    out[np.ix_(frames, points)] += shift
    return out


def names(desc):
    return {m.name for m in desc.motions}


def test_signals_are_zero_motion_for_a_still_face_and_scale_free():
    seq, _ = sequence(T=4, noise=0.0)
    s1 = measure_signals(seq)
    s2 = measure_signals(seq * 3.0 + 17.0)  # same face, bigger and shifted
    for k in s1:
        assert np.allclose(s1[k], s1[k][0]) and np.allclose(s1[k], s2[k]), k
    # hand check: the chin sits 0.7222/0.3776 IOD below the eye line in the template
    eye_y = TEMPLATE[[36, 39, 42, 45], 1].mean()
    iod_unit = np.linalg.norm(TEMPLATE[[42, 45]].mean(0) - TEMPLATE[[36, 39]].mean(0))
    assert s1["chin_drop"][0] == pytest.approx((TEMPLATE[8, 1] - eye_y) / iod_unit, abs=1e-3)


def test_mouth_corners_raised_over_second_half_is_the_only_motion():
    seq, rot = sequence(T=32)
    seq = move(seq, rot, CORNERS, range(16, 32), dy=-0.10)
    desc = describe_landmarks(seq, np.ones(32, bool), fps=25.0)
    assert names(desc) == {"lip_corner_pull"}
    (m,) = desc.motions
    assert m.timing == "second_half" and m.level == "clear"
    assert m.magnitude == pytest.approx(0.10, abs=0.01)
    assert 15 <= m.onset_frame <= 18 and m.offset_frame == 31
    assert m.onset_s == pytest.approx(m.onset_frame / 25.0)
    assert desc.text == "The mouth corners pull up in the second half of the clip."


def test_mouth_corners_pull_down_slightly_and_inner_brows_rise():
    seq, rot = sequence(T=40, seed=1)
    seq = move(seq, rot, CORNERS, range(20, 40), dy=+0.04)
    seq = move(seq, rot, INNER_BROWS, range(20, 40), dy=-0.05)
    desc = describe_landmarks(seq)
    assert names(desc) == {"lip_corner_depress", "inner_brow_raise"}
    assert all(m.timing == "second_half" and m.level == "slight" for m in desc.motions)
    assert desc.text == ("The inner brows rise slightly and the mouth corners pull down slightly "
                         "in the second half of the clip.")


def test_whole_brows_raised_in_first_half_under_head_roll():
    seq, rot = sequence(T=30, seed=2, rotate_deg=20.0)
    seq = move(seq, rot, ALL_BROWS, range(4, 13), dy=-0.20)  # raised and back down
    desc = describe_landmarks(seq)
    assert names(desc) == {"inner_brow_raise", "outer_brow_raise"}
    assert {m.timing for m in desc.motions} == {"first_half"}
    assert {m.level for m in desc.motions} == {"marked"}
    assert desc.text == "The brows rise markedly in the first half of the clip."


def test_jaw_drop_throughout_names_jaw_and_mouth_only():
    seq, rot = sequence(T=24, seed=3)
    seq = move(seq, rot, LOWER_JAW_AND_LIP, range(5, 24), dy=+0.15)
    desc = describe_landmarks(seq)
    assert names(desc) == {"jaw_drop", "mouth_open"}
    assert {m.timing for m in desc.motions} == {"throughout"}
    # 0.15 IOD is 3x the 0.05 threshold of both: "clear", which takes no adverb
    assert all(m.level == "clear" and m.magnitude == pytest.approx(0.15, abs=0.01) for m in desc.motions)
    assert desc.text == "The mouth opens and the jaw drops throughout the clip."


def test_brows_together_and_lid_tightening():
    seq, rot = sequence(T=24, seed=4)
    seq = move(seq, rot, [21, 20], range(12, 24), dx=+0.04)  # right inner brow towards the midline
    seq = move(seq, rot, [22, 23], range(12, 24), dx=-0.04)
    seq = move(seq, rot, [37, 38, 43, 44], range(12, 24), dy=+0.03)  # upper lids come down
    desc = describe_landmarks(seq)
    assert names(desc) == {"brows_together", "eyes_narrow"}


def test_still_sequence_has_no_motion():
    for seed in range(5):
        seq, _ = sequence(T=50, seed=seed, noise=0.006)
        desc = describe_landmarks(seq)
        assert desc.motions == [] and desc.text == STILL_TEXT


UPPER_LIDS = [37, 38, 43, 44]
CLOSED = 0.115  # IOD: upper lids down onto the lower lids (the template's lid opening is 0.126 IOD)


def test_blink_is_counted_not_described():
    seq, rot = sequence(T=20, seed=5)
    blink = move(seq, rot, UPPER_LIDS, [9, 10], dy=+CLOSED)  # two-frame blink at 25 fps
    for smooth in (None, 1):  # the blink rule works on the raw lid opening, not on the smoothed one
        det = detect_motions(blink, fps=25.0, smooth_frames=smooth)
        assert det.motions == [] and det.blinks == 1
    desc = describe_landmarks(blink, fps=25.0)
    assert desc.text == STILL_TEXT and desc.blinks == 1
    seq, rot = sequence(T=50, seed=5)
    blink = move(seq, rot, UPPER_LIDS, [20, 21, 22], dy=+CLOSED)  # 120 ms
    blink = move(blink, rot, UPPER_LIDS, range(35, 45), dy=+CLOSED)  # 400 ms: the longest blink
    desc = describe_landmarks(blink, fps=25.0)
    assert desc.motions == [] and desc.blinks == 2
    held = move(seq, rot, UPPER_LIDS, range(20, 30), dy=+0.05)  # 400 ms, lids 40 % down: a real narrowing
    desc = describe_landmarks(held, fps=25.0)
    assert [m.name for m in desc.motions] == ["eyes_narrow"] and desc.blinks == 0


def test_closing_eyes_close_and_do_not_narrow():
    seq, rot = sequence(T=250, seed=7)
    closed = move(seq, rot, UPPER_LIDS, range(100, 200), dy=+CLOSED)  # 4 s, from 4.0 s to 8.0 s
    closed = move(closed, rot, UPPER_LIDS, [30, 31], dy=+CLOSED)  # and a blink before
    desc = describe_landmarks(closed, fps=25.0)
    assert [m.name for m in desc.motions] == ["eyes_close"] and desc.blinks == 1
    (m,) = desc.motions
    assert abs(m.onset_frame - 100) <= 1 and abs(m.offset_frame - 199) <= 1
    assert desc.text == "The eyes close from 4.0 s to 8.0 s."
    short = describe_landmarks(closed[90:130], fps=25.0)  # 1.6 s: closes at 0.4 s and stays closed
    assert short.text == "The eyes close throughout the clip."
    assert "narrow" not in desc.text + short.text


MOUTH_INNER_LOWER, MOUTH_OUTER_LOWER = [65, 66, 67], [55, 56, 57, 58, 59]


def open_mouth(seq, rot, frames, amount=0.15):
    return move(seq, rot, MOUTH_INNER_LOWER + MOUTH_OUTER_LOWER, frames, dy=amount)  # lips part, jaw stays


def test_two_mouth_openings_are_two_events():
    seq, rot = sequence(T=60, seed=8)
    twice = open_mouth(open_mouth(seq, rot, range(6, 20)), rot, range(34, 50))  # closed for 0.56 s between
    desc = describe_landmarks(twice, fps=25.0)
    assert [m.name for m in desc.motions] == ["mouth_open", "mouth_open"]
    first, second = desc.motions
    assert abs(first.onset_frame - 6) <= 1 and abs(first.offset_frame - 19) <= 1
    assert abs(second.onset_frame - 34) <= 1 and abs(second.offset_frame - 49) <= 1
    assert desc.text == ("The mouth opens in the first half of the clip. "
                         "The mouth opens in the second half of the clip.")
    both_early = describe_landmarks(open_mouth(open_mouth(seq, rot, range(3, 10)), rot, range(19, 27)), fps=25.0)
    assert both_early.text == "The mouth opens twice in the first half of the clip."


def test_one_long_opening_is_one_event():
    seq, rot = sequence(T=60, seed=9)
    once = open_mouth(seq, rot, range(6, 50))
    # a dip that stays above half the threshold, and a 0.16 s closure (shorter than min_gap_s): one event
    dip = once.copy()
    dip[20:26] = open_mouth(seq, rot, range(20, 26), amount=0.04)[20:26]
    dip[36:40] = seq[36:40]
    for s in (once, dip):
        desc = describe_landmarks(s, fps=25.0)
        assert [m.name for m in desc.motions] == ["mouth_open"]
        assert abs(desc.motions[0].onset_frame - 6) <= 1 and abs(desc.motions[0].offset_frame - 49) <= 1
        assert desc.text == "The mouth opens throughout the clip."


def test_long_clip_reports_times_in_seconds():
    fps, T = 25.0, 250  # 10 s
    seq, rot = sequence(T=T, seed=10)
    s = move(seq, rot, CORNERS, range(50, 125), dy=-0.10)  # 2.0 s to 5.0 s
    s = move(s, rot, ALL_BROWS, range(175, 225), dy=-0.10)  # 7.0 s to 9.0 s
    s = open_mouth(s, rot, range(60, 100))  # 2.4 s to 4.0 s, inside the smile
    desc = describe_landmarks(s, fps=fps)
    assert desc.times == "seconds"
    expected = {"lip_corner_pull": (2.0, 5.0), "inner_brow_raise": (7.0, 9.0), "outer_brow_raise": (7.0, 9.0),
                "mouth_open": (2.4, 4.0)}
    assert sorted(m.name for m in desc.motions) == sorted(expected)
    for m in desc.motions:
        start, end = expected[m.name]
        assert abs(m.onset_s - start) <= 2 / fps and abs(m.end_s - end) <= 2 / fps, m
    assert desc.text == ("The mouth corners pull up from 2.0 s to 5.0 s. The mouth opens from 2.4 s to 4.0 s. "
                         "The brows rise from 7.0 s to 9.0 s.")
    # the same motion in a 1 s clip, or with no frame rate: halves and "throughout"
    short = describe_landmarks(move(seq[:25], rot, CORNERS, range(12, 25), dy=-0.10), fps=fps)
    assert short.times == "halves" and short.text == "The mouth corners pull up in the second half of the clip."
    no_rate = describe_landmarks(s)
    assert no_rate.times == "halves" and not re.search(r"\d s\b", no_rate.text), no_rate.text  # no times in seconds


def test_events_together_share_a_sentence_and_frequent_ones_are_counted():
    fps = 25.0
    seq, rot = sequence(T=250, seed=11)
    s = move(seq, rot, CORNERS, range(50, 100), dy=-0.10)
    s = move(s, rot, LOWER_JAW_AND_LIP, range(50, 100), dy=+0.15)  # jaw drop with the same times
    for start in (120, 145, 170, 195, 220):  # five short openings of the lips
        s = open_mouth(s, rot, range(start, start + 12))
    desc = describe_landmarks(s, fps=fps)
    # the jaw drop opens the mouth too: six openings in all, counted; the rest keeps its times
    assert desc.text == ("The mouth opens six times between 2.0 s and 9.3 s. "
                         "The mouth corners pull up and the jaw drops from 2.0 s to 4.0 s.")
    assert refine_description(desc.text).text == desc.text


def test_invalid_frames_are_skipped():
    seq, rot = sequence(T=32, seed=6)
    seq = move(seq, rot, CORNERS, range(16, 32), dy=-0.10)
    valid = np.ones(32, bool)
    garbage = [4, 5, 6, 7, 20, 27]  # a block longer than the smoothing window, and two singles
    seq[garbage] = np.random.default_rng(0).uniform(0, 300, (len(garbage), 68, 2))  # detector junk
    seq[11] = np.nan
    valid[garbage] = False
    desc = describe_landmarks(seq, valid)
    assert desc.n_valid == 25 and desc.n_frames == 32
    assert names(desc) == {"lip_corner_pull"}
    m = desc.motions[0]
    assert valid[m.onset_frame] and valid[m.peak_frame] and m.offset_frame == 31
    valid[11] = True  # NaN landmarks count as invalid even when flagged valid
    assert describe_landmarks(seq, valid).n_valid == 25
    assert len(describe_landmarks(seq, np.isfinite(seq).all(axis=(1, 2))).motions) > 1  # junk, unskipped


def test_no_valid_frames():
    seq, _ = sequence(T=8)
    desc = describe_landmarks(seq, np.zeros(8, bool))
    assert desc.text == NO_FACE_TEXT and desc.n_valid == 0


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(T, 68, 2\)"):
        detect_motions(np.zeros((5, 5, 2)))
    with pytest.raises(ValueError, match="valid"):
        detect_motions(np.zeros((5, 68, 2)), np.ones(4, bool))


def test_no_motion_phrase_uses_an_emotion_word():
    text = " ".join(f"{m.subject} {m.verb} slightly markedly" for m in MOTIONS)
    assert find_emotion_words(text) == []
