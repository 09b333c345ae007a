"""Pure parts of `finecliper predict`: window planning, track linking, attribution, output paths.

Updated with issue 13: windows carry their own times (start_s/end_s from the video's pts), face_tracks
takes the frame times and returns (tracks, rejected), link_tracks measures its gap in seconds."""
import numpy as np
import pytest
import torch

from finecliper.face.backend import FaceDetection
from finecliper.predict.explain import REGIONS, grad_times_input, heatmap_grid, region_shares
from finecliper.predict.video import TrackBoxes, face_tracks, link_tracks
from finecliper.predict.windows import needed_frames, plan_windows, uniform_times, windows_covering


# ----------------------------------------------------------------------------- windows

def test_short_clip_is_one_window_sampled_like_the_test_set():
    # 2 s at 25 fps (50 frames) <= 3 s window: one window, 16 segment centres floor(50/16/2 + k*50/16)
    (w,) = plan_windows(0, 49, 25.0, 16, window_s=3.0, stride_s=1.5)
    assert (w.start, w.end) == (0, 50) and (w.start_s, w.end_s) == (0.0, 2.0)
    assert list(w.indices) == [1, 4, 7, 10, 14, 17, 20, 23, 26, 29, 32, 35, 39, 42, 45, 48]


def test_very_short_clip_pads_with_its_last_frame():
    (w,) = plan_windows(5, 7, 25.0, 8)
    assert list(w.indices) == [5, 6, 7, 7, 7, 7, 7, 7] and (w.start, w.end) == (5, 8)


def test_long_video_sliding_windows_and_a_last_window_aligned_to_the_end():
    # 10 s at 10 fps = frames 0..99; window 3 s = 30 frames, stride 1.5 s = 15 frames:
    # starts 0, 15, 30, 45, 60 (70+30 = 100 fits: starts run while s <= 100-30 = 70 -> 0..60 by 15), then 70.
    ws = plan_windows(0, 99, 10.0, 4, window_s=3.0, stride_s=1.5)
    assert [(w.start, w.end) for w in ws] == [(0, 30), (15, 45), (30, 60), (45, 75), (60, 90), (70, 100)]
    assert [w.start_s for w in ws] == [0.0, 1.5, 3.0, 4.5, 6.0, 7.0]
    # 4 segment centres of 30 frames: floor(3.75 + 7.5k) = 3, 11, 18, 26
    assert list(ws[1].indices) == [18, 26, 33, 41]
    assert windows_covering(ws, 44) == [1, 2] and windows_covering(ws, 99) == [5]
    assert needed_frames(ws[:2]).tolist() == [3, 11, 18, 26, 33, 41]


def test_windows_follow_a_track_span_and_exact_fits_get_no_extra_window():
    ws = plan_windows(20, 79, 10.0, 4, window_s=2.0, stride_s=2.0)  # 60 frames, 20-frame windows
    assert [(w.start, w.end) for w in ws] == [(20, 40), (40, 60), (60, 80)]


def test_window_planning_rejects_bad_input():
    with pytest.raises(ValueError, match="fps"):
        plan_windows(0, 10, 0.0, 4)
    with pytest.raises(ValueError, match="times cover 5 frames"):
        plan_windows(0, 10, None, 4, times=uniform_times(5, 10.0))
    with pytest.raises(ValueError, match="empty frame span"):
        plan_windows(5, 4, 25.0, 4)
    with pytest.raises(ValueError, match="positive seconds"):
        plan_windows(0, 10, 25.0, 4, stride_s=0)


# ----------------------------------------------------------------------------- tracks

def _det(x, y, side=40.0):
    return FaceDetection(np.zeros((68, 2), np.float32), np.array([x, y, x + side, y + side], np.float32), 0.9)


def test_face_tracks_keep_ids_through_a_gap_and_order_by_first_appearance():
    # face A on the right from frame 0; face B on the left from frame 2; A vanishes for frames 10..19
    dets = []
    for k in range(30):
        f = [_det(200 + k, 50)] if not 10 <= k < 20 else []
        if k >= 2:
            f.append(_det(10, 60 + k / 2))
        dets.append(f)
    times = uniform_times(30, 10.0)
    tracks, rejected = face_tracks(dets, times, all_faces=True, link_gap_s=1.0)  # gap 10 frames <= 1 s
    assert [t.track_id for t in tracks] == [0, 1] and rejected == 0
    a, b = tracks
    assert a.boxes[0][0] == 200 and b.first == 2
    assert a.found.tolist() == [True] * 10 + [False] * 10 + [True] * 10  # one id across the gap
    # without linking the IoU tracker alone starts a new id after 5 missed frames: three tracks
    assert len(face_tracks(dets, times, all_faces=True, link_gap_s=0.0)[0]) == 3
    # default: only the largest summed area (A: 20 frames x 1600 < B: 28 frames x 1600)
    (main,), _ = face_tracks(dets, times)
    assert main.first == 2 and main.boxes[5][0] == 10


def test_link_tracks_never_merges_faces_seen_at_the_same_time_or_far_apart():
    n = 10
    def tb(tid, frames, x):
        t = TrackBoxes(tid, np.zeros((n, 4), np.float32), np.zeros(n, bool), np.zeros(n, np.float32))
        for k in frames:
            t.boxes[k], t.found[k] = [x, 0, x + 40, 40], True
        return t
    t = uniform_times(n, 10.0)
    overlapping = {0: tb(0, range(0, 6), 0), 1: tb(1, range(5, 10), 5)}
    assert sorted(link_tracks(overlapping, t, max_gap_s=0.5)) == [0, 1]
    far = {0: tb(0, range(0, 4), 0), 1: tb(1, range(6, 10), 200)}
    assert sorted(link_tracks(far, t, max_gap_s=0.5)) == [0, 1]
    near = {0: tb(0, range(0, 4), 0), 1: tb(1, range(6, 10), 10)}
    merged = link_tracks(near, t, max_gap_s=0.5)
    assert list(merged) == [0] and merged[0].found.sum() == 8
    assert sorted(link_tracks(near, t, max_gap_s=0.1)) == [0, 1]  # 2 frames missing = 0.2 s > 0.1 s


@pytest.mark.parametrize("all_faces", [True, False])
def test_short_and_small_tracks_are_dropped_in_every_mode(all_faces):
    """The issue's case: a 3-frame, 9-pixel detection in noise must not become a labelled face."""
    t = uniform_times(20, 10.0)
    tiny = [[_det(200, 10, side=9.0)] if 5 <= k < 8 else [] for k in range(20)]
    assert face_tracks(tiny, t, all_faces=all_faces) == ([], 1)
    big_but_short = [[_det(200, 10, side=80.0)] if 5 <= k < 8 else [] for k in range(20)]   # 0.3 s < 0.5 s
    assert face_tracks(big_but_short, t, all_faces=all_faces) == ([], 1)
    small_but_long = [[_det(200, 10, side=20.0)] for k in range(20)]                        # 20 px < 32 px
    assert face_tracks(small_but_long, t, all_faces=all_faces) == ([], 1)
    assert face_tracks(small_but_long, t, all_faces=all_faces, min_face_px=16)[0][0].size == 20.0
    # a real face plus a spurious blip: the blip goes, the face stays
    dets = [[_det(10, 10)] + ([_det(200, 10)] if k == 3 else []) for k in range(20)]
    tracks, rejected = face_tracks(dets, t, all_faces=all_faces, min_track_s=0.5)
    assert len(tracks) == 1 and rejected == 1 and tracks[0].boxes[0][0] == 10
    assert face_tracks([[] for _ in range(5)], uniform_times(5, 10.0)) == ([], 0)


def test_tracks_never_cross_a_shot_cut_and_each_shot_keeps_its_largest_face():
    """The same box position before and after a cut: the IoU tracker alone would carry the id over."""
    t = uniform_times(20, 10.0)
    dets = [[_det(100, 50, side=60.0)] + ([_det(10, 10, side=40.0)] if k >= 10 else []) for k in range(20)]
    (one,), _ = face_tracks(dets, t)
    assert one.found.all()  # no cut known: one track over the whole video
    tracks, _ = face_tracks(dets, t, [(0, 10), (10, 20)])
    assert [(x.track_id, x.first, x.end, x.shot) for x in tracks] == [(0, 0, 10, 0), (1, 10, 20, 1)]
    tracks, _ = face_tracks(dets, t, [(0, 10), (10, 20)], all_faces=True)
    assert [(x.first, x.end, x.shot) for x in tracks] == [(0, 10, 0), (10, 20, 1), (10, 20, 1)]


def test_cut_detection_from_colour_histograms():
    from finecliper.predict.shots import distance, find_cuts, shot_ranges, signature

    rng = np.random.default_rng(0)
    warm = np.clip(rng.normal([200, 120, 60], 20, (48, 64, 3)), 0, 255).astype(np.uint8)
    cold = np.clip(rng.normal([40, 90, 200], 20, (48, 64, 3)), 0, 255).astype(np.uint8)
    moved = np.roll(warm, 9, axis=1)                      # camera pan: same colours elsewhere
    assert distance(signature(warm), signature(moved)) < 0.1
    assert distance(signature(warm), signature(cold)) > 0.8
    d = np.array([0, 0.05, 0.9, 0.1, 0.02, 0.7])
    assert find_cuts(d, 0.4) == [2, 5] and find_cuts(d, 0.0) == []
    assert shot_ranges(8, [2, 5]) == [(0, 2), (2, 5), (5, 8)] and shot_ranges(3, []) == [(0, 3)]


# ----------------------------------------------------------------------------- explanations

class _Linear(torch.nn.Module):
    """logits_k = sum(W_k * frames): gradient x input of class c is W_c * x exactly."""

    def __init__(self, w):
        super().__init__()
        self.w = w  # (K, T, 3, S, S)

    def forward(self, batch):
        return torch.einsum("btchw,ktchw->bk", batch["frames"], self.w)


def test_grad_times_input_is_exact_on_a_linear_model():
    g = torch.Generator().manual_seed(0)
    w, x = torch.randn(3, 2, 3, 4, 4, generator=g), torch.randn(1, 2, 3, 4, 4, generator=g)
    attr = grad_times_input(_Linear(w), {"frames": x}, target=1)
    assert attr.shape == (2, 4, 4)
    assert torch.allclose(attr, (w[1] * x[0]).sum(1).abs(), atol=1e-6)
    with pytest.raises(ValueError, match="one window"):
        grad_times_input(_Linear(w), {"frames": x.repeat(2, 1, 1, 1, 1)}, 0)


def test_region_shares_count_attribution_per_face_region():
    labels = np.zeros((2, 2, 2), np.uint8)
    labels[0] = [[7, 4], [1, 0]]   # upper lip, left eye, skin, background
    labels[1] = [[9, 9], [9, 9]]   # lower lip (frame not valid: left out)
    attr = np.zeros((2, 2, 2))
    attr[0] = [[3, 1], [0, 0]]
    attr[1] = 100
    s = region_shares(attr, labels, valid=np.array([True, False]))
    assert s["mouth"] == pytest.approx(0.75) and s["eyes"] == pytest.approx(0.25)
    assert set(s) == set(REGIONS) and sum(s.values()) == pytest.approx(1.0)
    assert region_shares(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), np.uint8)) == {}


def test_heatmap_grid_layout():
    img = heatmap_grid(np.zeros((16, 32, 32, 3), np.uint8), np.random.default_rng(0).random((16, 32, 32)),
                       ["title", "second line"], cell=100, columns=8)
    assert img.shape == (2 * 20 + 8 + 2 * 100, 800, 3) and img.dtype == np.uint8


def test_per_video_output_names():
    from finecliper.cli.predict import per_video_path

    assert str(per_video_path("out/o.mp4", "a/clip.avi", many=False)) == "out/o.mp4"
    assert str(per_video_path("out/o.mp4", "a/clip.avi", many=True)) == "out/o.clip.mp4"


def test_windows_follow_the_video_time_of_a_variable_rate_stream():
    """10 frames at 10 fps then 20 frames at 40 fps: 1.5 s in all. Windows of 0.5 s are 0.5 s long."""
    times = np.concatenate([np.arange(10) * 0.1, 1.0 + np.arange(21) * 0.025])
    ws = plan_windows(0, 29, None, 4, window_s=0.5, stride_s=0.5, times=times)
    assert [(w.start, w.end) for w in ws] == [(0, 5), (5, 10), (10, 30)]
    assert [(w.start_s, w.end_s) for w in ws] == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5)]
    # frame counts would have cut 3 windows of 5 frames (30 frames, mean rate 20 fps)


def test_frame_times_from_pts_and_their_fallback():
    from finecliper.predict.video import frame_times

    t, ok = frame_times([0.5, 0.6, 0.8, 0.85], [0.1, 0.2, 0.05, 0.05], 25.0)
    assert ok and np.allclose(t, [0.0, 0.1, 0.3, 0.35, 0.4])
    t, ok = frame_times([0.0, None, 0.2], [None] * 3, 10.0)
    assert not ok and np.allclose(t, [0, 0.1, 0.2, 0.3])
    assert not frame_times([0.0, 0.2, 0.1], [None] * 3, 10.0)[1]  # not increasing


def test_neighbouring_labels_never_overlap():
    from finecliper.predict.overlay import _overlaps, place_labels

    # five faces side by side, each label wider than the gap between boxes
    boxes = [(40.0 + 70 * k, 200.0, 100.0 + 70 * k, 260.0) for k in range(5)]
    sizes = [(120, 60)] * 5
    rects = place_labels(boxes, sizes, (480, 640))
    for a in range(5):
        x, y, w, h = rects[a]
        assert 0 <= x and x + w <= 640 and 0 <= y and y + h <= 480
        for b in range(a + 1, 5):
            assert not _overlaps(rects[a], rects[b]), (rects[a], rects[b])
    assert rects[0] == (40, 138, 120, 60)       # the first sits right above its box (2 px gap)
    assert rects[1][1] in (263, 78)             # the next goes below its box (or higher) instead of covering it
    # a face at the top edge: its label goes below the box
    (r,) = place_labels([(10.0, 5.0, 60.0, 55.0)], [(80, 40)], (200, 200))
    assert r == (10, 58, 80, 40)


def test_detection_on_a_shrunk_frame_maps_boxes_back_to_frame_pixels():
    from finecliper.predict.video import detect_resized

    seen = []

    def fake(img):
        seen.append(img.shape)
        return [FaceDetection(np.zeros((68, 2), np.float32), np.array([10, 20, 30, 40], np.float32), 0.9)]

    (d,) = detect_resized(fake, np.zeros((200, 400, 3), np.uint8), max_side=100)
    assert seen == [(50, 100, 3)]
    assert d.box.tolist() == [41.5, 81.5, 121.5, 161.5]  # (x + 0.5) * 4 - 0.5, pixel centres
    (d,) = detect_resized(fake, np.zeros((200, 400, 3), np.uint8), max_side=0)
    assert seen[-1] == (200, 400, 3) and d.box.tolist() == [10, 20, 30, 40]
