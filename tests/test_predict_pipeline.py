"""`finecliper predict` end to end on generated videos of real faces, with tiny checkpoints.

Updated with issue 13: tracks say start_frame/end_frame (end exclusive); --out .csv writes the per-frame
table (+ .windows.csv, .tracks.csv) and .json nests the three tables per video; warnings go to stderr;
--explain writes the attention maps beside the gradient ones."""
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from finecliper.cli.main import main
from finecliper.predict.pipeline import PredictConfig, Predictor, UntrainedClassesWarning

sys.path.insert(0, str(Path(__file__).parent))
from predict_media import camera_frame, tiny_checkpoint, two_face_frames, write_video  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
N, FPS, GAP = 40, 10, (14, 22)   # 4 s; Hopper is missing in frames 14..21
CLASSES = ["happiness", "sadness", "neutral", "anger"]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    frames = two_face_frames(N, gap=GAP)
    two = write_video(root / "two.mp4", frames, fps=FPS)
    none = write_video(root / "camera.mp4", np.stack([camera_frame(120, 160)] * 12), fps=FPS)
    corrupt = root / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    ckpt = tiny_checkpoint(root, "base", classes=CLASSES)
    return {"root": root, "two": two, "none": none, "corrupt": corrupt, "ckpt": ckpt}


@pytest.fixture(scope="module")
def predictor(media):
    p = Predictor.from_checkpoint(media["ckpt"], cfg=PredictConfig(all_faces=True, window_s=2.0, stride_s=1.0))
    yield p
    p.close()


@pytest.fixture(scope="module")
def two_faces(predictor, media):
    return predictor.predict(media["two"])


def test_two_faces_get_two_tracks_whose_ids_persist_across_windows(two_faces):
    r = two_faces
    assert (r.num_frames, r.fps, r.frame_size) == (N, FPS, (240, 360))
    assert [t.track_id for t in r.tracks] == [0, 1]
    left, right = r.tracks  # same first frame: ordered left to right
    assert [(t.start_frame, t.end_frame, t.start_s, t.end_s) for t in r.tracks] == [(0, N, 0.0, 4.0)] * 2
    # 4 s, windows of 2 s every 1 s: [0, 2), [1, 3), [2, 4) for both tracks
    for t in r.tracks:
        assert [(w.start_frame, w.end_frame) for w in t.windows] == [(0, 20), (10, 30), (20, 40)]
        assert np.isclose(np.sum(t.probs), 1) and np.allclose(t.probs, np.mean([w.probs for w in t.windows], 0))
        assert t.label == CLASSES[int(np.argmax(t.probs))]
    # every window of track 0 sits on the astronaut (x 20..160), of track 1 on Hopper (x 217..326)
    for w in left.windows:
        assert 20 <= w.box[0] and w.box[2] <= 160
    for w in right.windows:
        assert 200 <= w.box[0] and w.box[2] <= 330
    # Hopper's face vanishes for 8 frames and keeps its id; per-frame validity says where
    assert left.face_valid.all()
    assert np.flatnonzero(~right.face_valid).tolist() == list(range(*GAP))
    assert right.windows[0].n_valid == int(right.face_valid[right.windows[0].frames].sum())


def test_largest_face_by_default(media):
    p = Predictor.from_checkpoint(media["ckpt"], cfg=PredictConfig(window_s=2.0, stride_s=1.0))
    try:
        (t,) = p.predict(media["two"]).tracks
    finally:
        p.close()
    assert t.track_id == 0 and t.face_valid.all() and t.windows[0].box[2] <= 160  # the 120-px astronaut


def test_no_face_gives_an_empty_result_with_a_message(predictor, media, tmp_path):
    r = predictor.predict(media["none"])
    assert r.tracks == [] and r.num_frames == 12
    assert "no face found" in r.message and "camera.mp4" in r.message
    out = tmp_path / "none.json"
    assert main(["predict", str(media["none"]), "--checkpoint", str(media["ckpt"]), "--out", str(out), "--quiet"]) == 0
    v = json.loads(out.read_text())["videos"][0]
    assert "no face found" in v["message"]
    # explicit entries, never missing rows: every frame, and one track/window row saying why
    assert len(v["frames"]) == 12 and {f["face_id"] for f in v["frames"]} == {None}
    assert not any(f["face_valid"] for f in v["frames"]) and [f["frame"] for f in v["frames"]] == list(range(12))
    (t,) = v["tracks"]
    assert t["face_id"] is None and "no face found" in t["message"]
    assert v["windows"][0]["face_id"] is None and "no face found" in v["windows"][0]["message"]


def test_corrupt_file_is_named_and_other_files_still_processed(media, tmp_path, capsys):
    from finecliper.data.frames import FrameError

    p = Predictor.from_checkpoint(media["ckpt"])
    with pytest.raises(FrameError, match="broken.mp4"):
        p.predict(media["corrupt"])
    p.close()
    out = tmp_path / "res.csv"
    rc = main(["predict", str(media["corrupt"]), str(media["two"]), "--checkpoint", str(media["ckpt"]),
               "--window", "2", "--stride", "1", "--out", str(out), "--quiet"])
    assert rc == 1
    assert "broken.mp4" in capsys.readouterr().err
    rows = list(csv.DictReader(out.open()))
    # the good video: one track (largest face): a row per frame; 3 windows; 1 track
    assert [int(r["frame"]) for r in rows] == list(range(N)) and {r["video"] for r in rows} == {str(media["two"])}
    assert abs(sum(float(rows[0][f"p_{c}"]) for c in CLASSES) - 1) < 1e-4
    windows = list(csv.DictReader((tmp_path / "res.windows.csv").open()))
    assert [w["window"] for w in windows] == ["0", "1", "2"]
    assert [t["face_id"] for t in csv.DictReader((tmp_path / "res.tracks.csv").open())] == ["0"]


def test_overlay_is_a_playable_video_with_the_input_frames_and_rate(two_faces, media, tmp_path):
    import av

    from finecliper.predict.overlay import write_overlay

    out = tmp_path / "overlay.mp4"
    assert write_overlay(media["two"], out, two_faces) == N
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.average_rate == FPS
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    assert len(frames) == N and frames[0].shape == (240, 360, 3)
    # track 0's box is drawn in green on frame 0, where the input has the astronaut's photo
    x0, y0, x1, y1 = (int(round(v)) for v in two_faces.tracks[0].boxes[0])
    edge = frames[0][y0 - 1:y0 + 2, x0 + 5:x1 - 5].reshape(-1, 3).astype(int)
    assert (edge[:, 1] > 150).mean() > 0.5 and (edge[:, 0] < 100).mean() > 0.5


def test_cli_overlay_and_json(media, tmp_path):
    out, ov = tmp_path / "r.json", tmp_path / "ov.mp4"
    assert main(["predict", str(media["two"]), "--checkpoint", str(media["ckpt"]), "--all-faces", "--window", "2",
                 "--stride", "1", "--overlay", str(ov), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    (v,) = res["videos"]
    assert res["errors"] == [] and v["classes"] == CLASSES and len(v["tracks"]) == 2
    assert len(v["frames"]) == 2 * N and v["tracks"][1]["n_valid"] == N - (GAP[1] - GAP[0])
    hopper = [f for f in v["frames"] if f["face_id"] == 1]
    assert [f["frame"] for f in hopper if not f["face_valid"]] == list(range(*GAP))
    assert [w["start_s"] for w in v["windows"] if w["face_id"] == 0] == [0.0, 1.0, 2.0]
    assert ov.is_file() and res["model"]["scorer"] == "finecliper"


def test_open_vocabulary_classes_change_the_class_list_and_warn(media, two_faces):
    p = Predictor.from_checkpoint(media["ckpt"], cfg=PredictConfig(all_faces=True, window_s=2.0, stride_s=1.0))
    try:
        with pytest.warns(UntrainedClassesWarning, match="boredom, confusion were NOT trained"):
            assert p.set_classes(["boredom", "happiness", "confusion", "sadness"]) == ["boredom", "confusion"]
        r = p.predict(media["two"])
    finally:
        p.close()
    assert r.classes == ["boredom", "happiness", "confusion", "sadness"] and "NOT trained" in r.warnings[0]
    # the trained words go through the same text path: their logits are unchanged, so the ratio of their
    # probabilities is the same as with the trained class list (softmax only renormalises)
    for t_old, t_new in zip(two_faces.tracks, r.tracks):
        for w_old, w_new in zip(t_old.windows, t_new.windows):
            assert len(w_new.probs) == 4 and w_new.label in r.classes
            old = w_old.probs[0] / w_old.probs[1]      # happiness / sadness, trained order
            new = w_new.probs[1] / w_new.probs[3]
            assert new == pytest.approx(old, rel=1e-4)
    with pytest.raises(ValueError, match="at least two"):
        p.set_classes(["boredom"])


def test_cli_open_vocabulary_warns_on_the_terminal(media, tmp_path, capsys):
    out = tmp_path / "o.json"
    assert main(["predict", str(media["two"]), "--checkpoint", str(media["ckpt"]), "--classes", "boredom, happiness",
                 "--out", str(out)]) == 0
    assert "NOT trained" in capsys.readouterr().err
    v = json.loads(out.read_text())["videos"][0]
    assert v["classes"] == ["boredom", "happiness"] and {"p_boredom", "p_happiness"} <= set(v["tracks"][0])
    assert "p_neutral" not in v["tracks"][0]


def test_full_variant_with_maps_descriptions_and_explanations(media, tmp_path):
    """FineCLIPER*† needs parsing/landmark maps and a description per window; --explain writes PNGs."""
    ckpt = tiny_checkpoint(tmp_path, "star_dagger", classes=CLASSES)
    ex = tmp_path / "explain"
    p = Predictor.from_checkpoint(ckpt, cfg=PredictConfig(window_s=2.0, stride_s=1.0, describe=True, explain=str(ex)))
    try:
        (t,) = p.predict(media["two"]).tracks
    finally:
        p.close()
    assert t.description and all(w.description for w in t.windows)
    assert set(t.windows[0].weights) == {"video", "parsing", "landmarks", "description"}
    assert sum(t.windows[0].weights.values()) == pytest.approx(1, abs=1e-4)
    assert sorted(x.name for x in ex.glob("*.png")) == sorted(
        [f"two_track0_window00{k}.png" for k in range(3)] + [f"two_track0_window00{k}_attention.png" for k in range(3)])
    assert all(w.explanation == str(ex / f"two_track0_window00{k}.png") for k, w in enumerate(t.windows))
    assert all(w.attention == str(ex / f"two_track0_window00{k}_attention.png") for k, w in enumerate(t.windows))
    for w in t.windows:  # the face parsing of the crops splits the attribution into regions
        assert sum(w.regions.values()) == pytest.approx(1, abs=1e-3) and w.regions["skin"] > 0
