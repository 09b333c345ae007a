"""The three scorers on generated videos of real faces: tables, ids, times, boxes; zero-shot = CLIP PN by
hand; variable frame rate; shot cuts; coverage; no face; attention maps."""
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import finecliper
from finecliper.clip import load as load_clip
from finecliper.predict import explain as ex
from finecliper.predict.pipeline import PredictConfig, Predictor
from finecliper.predict.scorers import make_scorer, zero_shot_model

sys.path.insert(0, str(Path(__file__).parent))
from predict_media import astronaut_face, camera_frame, hopper_face, paste, tiny_checkpoint, two_face_frames, write_video  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
N, FPS, GAP = 40, 10, (14, 22)
CLASSES = ["happiness", "sadness", "neutral", "anger"]
OPTS = dict(all_faces=True, window_s=2.0, stride_s=1.0)


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("scorers")
    two = write_video(root / "two.mp4", two_face_frames(N, gap=GAP), fps=FPS)
    ckpt = tiny_checkpoint(root, "base", classes=CLASSES)
    return {"root": root, "two": two, "ckpt": ckpt, "clip": root / "clip.pt"}


SCORERS = {
    "fer": lambda m: {},
    "zero-shot": lambda m: {"zero_shot": True, "clip": m["clip"], "classes": ["joy", "boredom", "anger"]},
    "finecliper": lambda m: {"checkpoint": m["ckpt"]},
}


@pytest.mark.parametrize("name", list(SCORERS))
def test_each_scorer_on_a_two_face_video(media, name):
    df = finecliper.predict_video(media["two"], **SCORERS[name](media), **OPTS)
    assert isinstance(df, pd.DataFrame) and df.videos[0]["scorer"] == name
    classes = df.videos[0]["classes"]
    p = df[[f"p_{c}" for c in classes]].to_numpy()
    # a row per frame and face: both faces span the whole video
    assert len(df) == 2 * N and (df.groupby("face_id").size() == N).all()
    assert df[df.face_id == 0].frame.tolist() == list(range(N)) and df.face_id.tolist() == [0, 1] * N
    assert np.allclose(df.time_s, df.frame / FPS) and (df.shot == 0).all()
    assert np.allclose(p.sum(1), 1, atol=1e-4) and (df.label == np.asarray(classes)[p.argmax(1)]).all()
    # boxes in frame pixels: the astronaut is pasted at x 20..160 (drifting), Hopper at x ~217..326
    a, h = df[df.face_id == 0], df[df.face_id == 1]
    assert a.face_valid.all() and (a.x >= 15).all() and (a.x + a.w <= 165).all() and (a.w > 40).all()
    hv = h[h.face_valid]
    assert (hv.x >= 195).all() and (hv.x + hv.w <= 335).all() and (hv.h > 30).all()
    # Hopper is gone in frames 14..21 and keeps id 1 after: no box there, still labelled by its windows
    assert h[~h.face_valid].frame.tolist() == list(range(*GAP)) and h[~h.face_valid].x.isna().all()
    assert h[~h.face_valid].label.notna().all()
    # the windows: [0, 2), [1, 3), [2, 4) s per face, end exclusive
    w = df.windows
    assert w[["face_id", "start_frame", "end_frame"]].values.tolist() == [
        [f, s, e] for f in (0, 1) for s, e in ((0, 20), (10, 30), (20, 40))]
    assert w.start_s.tolist() == [0.0, 1.0, 2.0] * 2 and w.end_s.tolist() == [2.0, 3.0, 4.0] * 2
    # a frame's probabilities: the mean of the windows of its face that hold it
    f15 = a[a.frame == 15][[f"p_{c}" for c in classes]].to_numpy()[0]
    wp = w[w.face_id == 0][[f"p_{c}" for c in classes]].to_numpy()
    assert np.allclose(f15, wp[:2].mean(0), atol=1e-6)
    t = df.tracks
    assert t.face_id.tolist() == [0, 1] and t.n_valid.tolist() == [N, N - (GAP[1] - GAP[0])]
    assert np.allclose(t[[f"p_{c}" for c in classes]].to_numpy()[0], wp.mean(0), atol=1e-6)
    if name == "fer":  # a static baseline reads every frame where the face was found
        assert w.n_frames.tolist() == [20, 20, 20, 14, 12, 18] and w.n_valid.tolist() == w.n_frames.tolist()
    else:
        assert set(w.n_frames) == {4 if name == "finecliper" else 16}


def test_fer_is_the_default_and_scores_fer_per_frame(media):
    from finecliper.baselines.base import FER2013_TO_CANONICAL
    from finecliper.baselines.fer_tflite import FER_CLASSES, FerClassifier
    from finecliper.face.crop import crop_frames
    from finecliper.predict.video import TrackBoxes, iter_frames

    pred = Predictor(make_scorer(), PredictConfig(**OPTS))
    try:
        r = pred.predict(media["two"])
    finally:
        pred.close()
    assert r.scorer == "fer" and r.model["name"] == "fer"
    assert r.classes == ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
    # window 0 of face 0 = the mean of fer's own probabilities on its 20 frames, mapped by class name
    t = r.tracks[0]
    crop = pred.scorer.crop_track(TrackBoxes(0, t.boxes, t.face_valid, t.confidence), r.frame_size)
    frames = np.stack([f for k, f in enumerate(iter_frames(media["two"])) if k < 20])
    own = FerClassifier().predict_proba(crop_frames(frames, crop)).mean(0)
    expect = {FER2013_TO_CANONICAL[c]: own[k] for k, c in enumerate(FER_CLASSES)}
    assert np.allclose(t.windows[0].probs, [expect[c] for c in r.classes], atol=1e-5)


def _clip_pn_by_hand(clip_path, frames, classes, tau=0.01):
    """Plain CLIP zero-shot PN scoring: mean of the frames' image features vs PN prompt text features."""
    b = load_clip(clip_path)
    with torch.no_grad():
        img = F.normalize(b.encode_image(frames).mean(0, keepdim=True), dim=-1)                  # (1, E)
        pos = F.normalize(b.encode_text(b.tokenize([f"A person with an expression of {c}." for c in classes])), dim=-1)
        neg = F.normalize(b.encode_text(b.tokenize([f"A person with an expression of no {c}." for c in classes])), dim=-1)
    return (img @ pos.t() - img @ neg.t()) / tau


def test_zero_shot_scorer_is_plain_clip_pn_scoring(media):
    classes = ["joy", "boredom", "anger", "surprise"]
    scorer = make_scorer(zero_shot=True, clip=media["clip"], classes=classes)
    frames = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = scorer.model({"frames": frames[None]}).logits
    assert scorer.classes == classes and scorer.model.cfg.variant == "base"
    assert torch.allclose(logits, _clip_pn_by_hand(media["clip"], frames, classes), atol=2e-4)
    # the adapters really are identity/zero: a trained checkpoint on the same CLIP scores otherwise
    trained = make_scorer(checkpoint=media["ckpt"], classes=classes)
    with torch.no_grad():
        other = trained.model({"frames": frames[None, :4]}).logits
    assert not torch.allclose(other, _clip_pn_by_hand(media["clip"], frames[:4], classes), atol=1e-2)


def test_zero_shot_with_longclip_joins_the_description_path(media, tmp_path):
    from finecliper.clip.testing import random_tiny_clip, save_tiny_clip

    longclip = save_tiny_clip(random_tiny_clip(5, vision_width=64, text_width=64, image_size=32, context_length=248),
                              tmp_path / "longclip.pt", "longclip")
    model = zero_shot_model(media["clip"], longclip, ["joy", "anger"], num_frames=4)
    assert model.cfg.variant == "dagger" and model.modalities == ("video", "description")
    lc = load_clip(longclip)
    tokens = model.tokenize_description(["The mouth opens."], 248)
    with torch.no_grad():
        mine = model.encode_description(tokens)
        by_hand = F.normalize(lc.encode_text(tokens[:, :int(tokens.argmax()) + 1]), dim=-1)
    assert torch.allclose(mine, by_hand, atol=1e-5)
    df = finecliper.predict_video(media["two"], zero_shot=True, clip=media["clip"], longclip=longclip, window_s=2.0,
                                  stride_s=1.0)
    assert {"w_video", "w_description"} <= set(df.windows) and df.windows.description.notna().all()


def _vfr_video(path, frames, pts_ms):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for f, p in zip(frames, pts_ms):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = int(p), Fraction(1, 1000)
            for pkt in s.encode(vf):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def test_variable_frame_rate_times_come_from_pts(tmp_path):
    import av

    pts = np.concatenate([np.arange(20) * 100, 2000 + np.arange(20) * 25])       # 10 fps, then 40 fps
    video = _vfr_video(tmp_path / "vfr.mp4", two_face_frames(40), pts)
    with av.open(str(video)) as c:
        assert [f.pts * f.time_base for f in c.decode(video=0)] == [Fraction(int(p), 1000) for p in pts]
        rate = float(c.streams.video[0].average_rate)
    df = finecliper.predict_video(video, window_s=1.0, stride_s=1.0)
    assert np.allclose(df.time_s, pts / 1000) and not np.allclose(df.time_s, df.frame / rate, atol=0.05)
    assert df.videos[0]["times_from_pts"]
    w = df.windows
    # 1 s windows in the video's time: 10 frames at 10 fps, 10 frames, then the end-aligned last second
    # (the end of the video is the last pts plus the last frame's duration, as the stream says)
    end = df.tracks.end_s.iloc[0]
    assert 2.475 < end <= 2.575
    last_start = int(np.searchsorted(pts / 1000, end - 1.0 - 1e-6))
    assert last_start in (15, 16)
    assert w[["start_frame", "end_frame"]].values.tolist() == [[0, 10], [10, 20], [last_start, 40]]
    assert w.start_s.tolist()[:2] == [0.0, 1.0] and w.end_s.tolist()[:2] == [1.0, 2.0]
    assert w.end_s.iloc[2] == pytest.approx(end)
    # by frame counts at the container's mean rate the windows would have been 15 frames each: (0, 15), ...


def _cut_video(path, n=30, cut=15, same_face=False):
    """One face at the same place before and after a cut; the scene (background) changes at the cut."""
    a, g = astronaut_face(), hopper_face()
    rng = np.random.default_rng(0)
    warm = np.clip(rng.normal([200, 120, 60], 12, (240, 320, 3)), 0, 255).astype(np.uint8)
    grey = camera_frame(240, 320)
    frames = []
    for k in range(n):
        f = (warm if k < cut else grey).copy()
        paste(f, a if (k < cut or same_face) else g, 100, 50, 130)
        frames.append(f)
    return write_video(path, np.stack(frames), fps=FPS)


@pytest.mark.parametrize("all_faces", [False, True])
def test_a_cut_between_two_different_faces_gives_two_ids(tmp_path, all_faces):
    video = _cut_video(tmp_path / "cut.mp4")
    df = finecliper.predict_video(video, all_faces=all_faces, window_s=1.0, stride_s=0.5)
    assert df.videos[0]["shots"] == [[0, 15], [15, 30]]
    assert df.tracks[["face_id", "start_frame", "end_frame", "shot"]].values.tolist() == [[0, 0, 15, 0], [1, 15, 30, 1]]
    assert df[df.frame < 15].face_id.unique().tolist() == [0] and df[df.frame >= 15].face_id.unique().tolist() == [1]
    # without cut detection the IoU tracker carries the id across: the astronaut's id lands on Hopper
    merged = finecliper.predict_video(video, all_faces=all_faces, window_s=1.0, stride_s=0.5, cut_threshold=0.0)
    assert merged.tracks.face_id.tolist() == [0] and merged.videos[0]["shots"] == [[0, 30]]


def test_coverage_warnings_when_a_face_is_seen_in_few_frames(tmp_path):
    a = astronaut_face()
    frames = []
    for k in range(40):
        f = np.full((240, 320, 3), 90, np.uint8)
        if k < 8 or 32 <= k < 36:
            paste(f, a, 100, 50, 130)
        frames.append(f)
    video = write_video(tmp_path / "few.mp4", np.stack(frames), fps=FPS)
    df = finecliper.predict_video(video, link_gap_s=3.0)
    (t,) = df.tracks.itertuples()
    assert (t.start_frame, t.end_frame, t.n_valid, t.coverage) == (0, 36, 12, pytest.approx(12 / 36, abs=1e-4))
    warnings = df.videos[0]["warnings"]
    assert any(w.startswith("face 0: found in 12 of 36 frames (33 %)") for w in warnings), warnings
    assert any("faces found in 12 of 40 frames (30 %) of the video" in w for w in warnings), warnings
    assert finecliper.predict_video(video, link_gap_s=3.0, min_coverage=0.2).videos[0]["warnings"] == []


def test_a_video_without_a_face_is_an_explicit_empty_result(tmp_path):
    video = write_video(tmp_path / "none.mp4", np.stack([camera_frame(120, 160)] * 12), fps=FPS)
    df = finecliper.predict_video(video)
    assert len(df) == 12 and df.face_id.isna().all() and not df.face_valid.any() and df.label.isna().all()
    assert df.frame.tolist() == list(range(12)) and np.allclose(df.time_s, np.arange(12) / FPS)
    (t,) = df.tracks.itertuples()
    assert pd.isna(t.face_id) and "no face found" in t.message and "none.mp4" in t.message
    assert len(df.windows) == 1 and "no face found" in df.windows.message.iloc[0]
    out = df.save(tmp_path / "none.csv")
    assert [p.name for p in out] == ["none.csv", "none.windows.csv", "none.tracks.csv"]
    assert len(pd.read_csv(out[0])) == 12


def test_attention_map_is_the_eager_attention_of_the_last_block(media):
    """The CLS row recomputed from q/k equals what transformers' eager attention returns for that block."""
    from finecliper.model.factory import set_attention
    from finecliper.model.finecliper import FineCLIPER

    model = FineCLIPER.from_pretrained(media["ckpt"]).eval()   # random, non-zero adapters
    frames = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ours = ex.last_block_attention(model.video_encoder, frames)                # (T, G, G)
    set_attention(model.clip, "eager")
    layer = model.clip.vision_model.encoder.layers[-1]
    weights = []
    handle = layer.self_attn.register_forward_hook(lambda m, a, out: weights.append(out[1]))
    try:
        with torch.no_grad():
            model.video_encoder.forward_features(frames)
    finally:
        handle.remove()
    eager = weights[1].mean(1)[:, 0, 1:]                                     # spatial call: (T, heads, N, N)
    assert ours.shape == (4, 2, 2) and torch.allclose(ours.reshape(4, -1), eager, atol=1e-6)
    assert torch.allclose(ours.reshape(4, -1).sum(1) + weights[1].mean(1)[:, 0, 0], torch.ones(4), atol=1e-5)
    maps = ex.attention_maps(model, frames)
    assert maps.shape == (4, 32, 32) and np.allclose(maps[:, :16, :16], ours[:, :1, :1].numpy())


def test_progress_is_reported_for_both_passes(media):
    seen = []
    pred = Predictor(make_scorer(), PredictConfig(**OPTS))
    try:
        pred.predict(media["two"], progress=lambda stage, done, total: seen.append((stage, done, total)))
    finally:
        pred.close()
    faces = [s for s in seen if s[0] == "faces"]
    scoring = [s for s in seen if s[0] == "scoring"]
    assert [d for _, d, _ in faces] == list(range(1, N + 1)) and faces[-1][2] == N
    assert scoring[-1][1] == scoring[-1][2] and [d for _, d, _ in scoring] == sorted(d for _, d, _ in scoring)


def test_top_level_exports_are_light():
    import subprocess

    code = ("import sys, finecliper; heavy = 'torch' in sys.modules; "
            "f = finecliper.predict_video; m = finecliper.FineCLIPER; print(heavy, f.__module__, m.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "finecliper.predict.api", "finecliper.model.finecliper"]
    assert {"predict_video", "FineCLIPER", "ModelConfig", "zero_shot_model", "PredictConfig"} <= set(dir(finecliper))


def test_descriptions_get_the_tracks_mesh_depth(media, monkeypatch):
    """--describe passes each track's depth68 to the describer, so it aligns the face in 3-D."""
    import finecliper.predict.pipeline as pipeline

    calls = []
    real = pipeline.describe_landmarks

    def spy(landmarks, valid=None, **kw):
        calls.append((landmarks.shape, kw.get("depth"), kw.get("fps")))
        return real(landmarks, valid, **kw)

    monkeypatch.setattr(pipeline, "describe_landmarks", spy)
    df = finecliper.predict_video(media["two"], describe=True, window_s=2.0, stride_s=1.0)
    assert len(calls) == 4 and df.tracks.description.notna().all() and df.windows.description.notna().all()
    for shape, depth, fps in calls:
        assert depth is not None and depth.shape == (shape[0], 68) and np.isfinite(depth).mean() > 0.9
        assert fps == pytest.approx(FPS)


def test_zero_shot_on_openais_torchscript_file_needs_allow_pickle(media, tmp_path, capsys):
    from finecliper.cli.main import main
    from finecliper.clip.testing import random_tiny_clip, save_tiny_clip

    jit = save_tiny_clip(random_tiny_clip(3, vision_width=64, text_width=64, image_size=32), tmp_path / "ViT-B-16.pt",
                         "openai-jit")  # the layout of OpenAI's own release: a TorchScript archive
    argv = ["predict", str(media["two"]), "--zero-shot", "--clip", str(jit), "--out", str(tmp_path / "r.csv"), "--quiet"]
    assert main(argv) != 0
    assert "--allow-pickle" in capsys.readouterr().err
    assert main([*argv, "--allow-pickle"]) == 0
    assert (tmp_path / "r.csv").is_file()
