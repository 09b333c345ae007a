"""`finecliper extract` and FaceMapsExtra end to end on tiny clips made from real faces."""
import json
import os

import cv2
import numpy as np
import pytest
import torch
from skimage import data

import finecliper
from finecliper.data.augment import CLIP_MEAN, CLIP_STD, GeomParams, apply_image, apply_points
from finecliper.face import layout as Lay
from finecliper.face.cache import FaceCacheError, cache_path, load_face_cache
from finecliper.face.crop import crop_to_frame, CropTrack
from finecliper.face.extract import (ExtractConfig, clips_from_manifest, discover_clips, extract_clip,
                                     make_analyser, parse_shard, run_extraction, shard)
from finecliper.face.maps_extra import FaceMapsExtra, render_clip_maps
from finecliper.face.models import SHA256
from finecliper.face.render import LANDMARK_COLOURS, PARSING_PALETTE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
S = 112  # frame size of the test clips


def _face_frame(dx=0, dy=0):
    """A 112x112 face crop of the astronaut, shifted by (dx, dy) px."""
    img = data.astronaut()[30 + dy:230 + dy, 125 + dx:325 + dx]
    return cv2.resize(img, (S, S), interpolation=cv2.INTER_AREA)


def _no_face():
    return cv2.resize(np.repeat(data.camera()[:, :, None], 3, 2), (S, S), interpolation=cv2.INTER_AREA)


def _write_video(path, frames):
    from finecliper.data.frames import write_video

    write_video(path, frames, 25, crf=12)


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    folder = root / "Happy" / "0001"
    folder.mkdir(parents=True)
    frames = [_face_frame(2 * k, k) for k in range(4)] + [_no_face()]
    for k, f in enumerate(frames):
        cv2.imwrite(str(folder / f"img_{k + 1}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    _write_video(root / "clip2.mp4", np.stack([_face_frame(-k, 0) for k in range(6)]))
    return root


@pytest.fixture(scope="module")
def cache_dir(clips_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    s = run_extraction(discover_clips(clips_dir), out, ExtractConfig(chunk=3))  # chunk 3: tracking spans chunks
    assert (s.written, s.skipped, s.failed, s.frames) == (2, 0, [], 11)
    return out


def test_discover_clips_and_shards(clips_dir):
    clips = discover_clips(clips_dir)
    assert [c[0] for c in clips] == ["clip2", "Happy/0001"]  # natural, case-insensitive order
    assert parse_shard("1/3") == (1, 3) and shard(list(range(7)), 1, 3) == [1, 4]
    with pytest.raises(ValueError, match="i/n"):
        parse_shard("3")
    with pytest.raises(ValueError, match="0 <= i < n"):
        parse_shard("2/2")


def test_extract_writes_one_cache_per_clip_with_every_frame(cache_dir):
    a = load_face_cache(cache_path(cache_dir, "Happy/0001"))
    assert len(a) == 5 and a.valid.tolist() == [True] * 4 + [False] and a.reason_names()[4] == "no face"
    assert a.parsing.shape == (5, 224, 224) and a.frame_hw == (S, S)        # parsing stored at 224
    # the crop window moves by (2k, k) px of the 200-px source: the face by -(2k, k) * 112/200 in the frame
    moved = a.landmarks68[:4] - a.landmarks68[:1]
    assert np.abs(moved + np.array([[2 * k, k] for k in range(4)])[:, None] * S / 200).mean() < 0.6
    b = load_face_cache(cache_path(cache_dir, "clip2"))
    assert len(b) == 6 and b.valid.all() and (b.confidence > 0.8).all()
    man = json.loads((cache_dir / "cache_manifest.json").read_text())
    ext = man["extractor"]
    assert ext["backend"] == "facemesh" and ext["version"] == finecliper.__version__ and ext["params"]["max_faces"] == 1
    assert ext["models"] == {f: SHA256[f] for f in ("face_detection_short_range.tflite", "face_landmark.tflite")}
    assert ext["extractor_version"] == 2 and man["format_version"] == 2
    assert len(man["extractor_hash"]) == 64


def test_rerun_resumes_and_foreign_cache_is_refused(clips_dir, cache_dir):
    files = [cache_path(cache_dir, c) for c in ("Happy/0001", "clip2")]
    before = [os.stat(f).st_mtime_ns for f in files]
    s = run_extraction(discover_clips(clips_dir), cache_dir, ExtractConfig(chunk=3))
    assert (s.written, s.skipped, s.frames) == (0, 2, 0)
    assert [os.stat(f).st_mtime_ns for f in files] == before          # nothing recomputed
    other = ExtractConfig()
    other.facemesh.min_confidence = 0.7
    with pytest.raises(FaceCacheError, match=r"params.min_confidence: cache has 0.5, now 0.7"):
        run_extraction(discover_clips(clips_dir), cache_dir, other)


def test_a_clip_file_with_another_hash_is_recomputed(clips_dir, tmp_path):
    cfg = ExtractConfig()
    clips = [c for c in discover_clips(clips_dir) if c[0] == "clip2"]
    run_extraction(clips, tmp_path, cfg)
    p = cache_path(tmp_path, "clip2")
    with np.load(p) as z:
        arrays = dict(z)
    arrays["extractor_hash"] = np.array("stale")
    np.savez_compressed(p, **arrays)                                   # e.g. left over by an older run
    s = run_extraction(clips, tmp_path, cfg)
    assert (s.written, s.skipped) == (1, 0)


def test_a_truncated_clip_file_is_redone_not_a_crash(clips_dir, tmp_path):
    clips = [c for c in discover_clips(clips_dir) if c[0] == "clip2"]
    run_extraction(clips, tmp_path, ExtractConfig())
    p = cache_path(tmp_path, "clip2")
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])         # a kill during a copy, a full disk...
    s = run_extraction(clips, tmp_path, ExtractConfig())
    assert (s.written, s.skipped, s.failed) == (1, 0, []) and len(load_face_cache(p)) == 6


def test_depth_is_cached_with_the_landmarks(clips_dir, cache_dir):
    a = load_face_cache(cache_path(cache_dir, "Happy/0001"))
    assert a.depth68.shape == (5, 68) and a.depth68.dtype == np.float32
    assert np.isfinite(a.depth68[:4]).all() and np.isnan(a.depth68[4]).all()   # the no-face frame has none
    direct = make_analyser(ExtractConfig()).analyse(np.stack([_face_frame(2 * k, k) for k in range(4)]), video=True)
    assert np.abs(a.depth68[:4] - direct.depth68).max() < 0.05                  # float16 in the file
    assert a.depth68[:4, 30].mean() < a.depth68[:4, [0, 16]].mean()             # nose tip nearer than the jaw ends


def test_a_cache_from_the_mediapipe_backend_is_refused(clips_dir, tmp_path, capsys):
    from finecliper.cli.main import main

    old = {"extractor_version": 1, "backend": "mediapipe", "version": "0.10.14", "layout": "x",
           "params": {"max_faces": 1, "refine_landmarks": True}}
    (tmp_path / "cache_manifest.json").write_text(json.dumps(
        {"format": "finecliper-face-cache", "format_version": 1, "extractor": old, "extractor_hash": "0" * 64}))
    with pytest.raises(FaceCacheError, match=r"backend mediapipe.*re-run `finecliper extract`"):
        run_extraction(discover_clips(clips_dir), tmp_path, ExtractConfig())
    with pytest.raises(FaceCacheError, match=r"re-run `finecliper extract`"):
        FaceMapsExtra(tmp_path, image_size=96)
    assert main(["extract", "--clips", str(clips_dir), "--out", str(tmp_path)]) == 2
    assert "re-run `finecliper extract`" in " ".join(capsys.readouterr().err.split())   # rich wraps lines
    assert not list(tmp_path.rglob("*.npz"))                          # nothing mixed into the old folder


def _denorm(x: torch.Tensor) -> np.ndarray:
    """(T, 3, S, S) CLIP-normalised → (T, S, S, 3) uint8."""
    m, s = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x * s + m).mul(255).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def test_face_maps_extra_no_face_frame_gives_empty_maps(cache_dir):
    extra = FaceMapsExtra(cache_dir, image_size=96)
    geom = GeomParams(0, 0, S, S, flip=False, angle=0.0, out_size=96, src_h=S, src_w=S)
    out = extra.load(type("Rec", (), {"clip_id": "Happy/0001"})(), np.array([0, 4, 4, 1]), geom, (S, S))
    assert out["parsing_maps"].shape == (4, 3, 96, 96) and out["landmark_maps"].shape == (4, 3, 96, 96)
    assert out["face_valid"].dtype == torch.bool and out["face_valid"].tolist() == [True, False, False, True]
    p, lm = _denorm(out["parsing_maps"]), _denorm(out["landmark_maps"])
    assert p[1].max() == 0 and lm[1].max() == 0                       # black = empty
    assert (p[0] > 0).any(-1).mean() > 0.15 and (lm[0] > 0).any(-1).mean() > 0.02
    with pytest.raises(FaceCacheError, match=r"no face cache for clip 'Sad/0002' in .*cache"):
        extra.load(type("Rec", (), {"clip_id": "Sad/0002"})(), np.array([0]), geom, (S, S))
    with pytest.raises(FaceCacheError, match="has 5 frames but frame 9"):
        extra.load(type("Rec", (), {"clip_id": "Happy/0001"})(), np.array([9]), geom, (S, S))
    with pytest.raises(FaceCacheError, match="not a face cache"):
        FaceMapsExtra(cache_dir / "Happy")


@pytest.mark.parametrize("flip,angle", [(False, 0.0), (True, 0.0), (True, 8.0)])
def test_augmentation_keeps_frame_maps_and_landmarks_aligned(cache_dir, flip, angle):
    track = load_face_cache(cache_path(cache_dir, "Happy/0001")).select([1])
    lm = track.landmarks68[0]
    out_size = 96
    geom = GeomParams(8, 4, 90, 100, flip=flip, angle=angle, out_size=out_size, src_h=S, src_w=S)
    # marks drawn on the frame: the image-left eye's centre and the outer corner 36
    frame = np.zeros((S, S, 3), np.uint8)
    eye_c = lm[36:42].mean(0)
    for p in (eye_c, lm[36]):
        frame[int(round(p[1])), int(round(p[0]))] = 255
    aug = apply_image(frame, geom, "bilinear")[..., 0].astype(float)
    parsing, marks, valid = render_clip_maps(track, geom, (S, S))
    assert valid.tolist() == [True]
    for p, k in ((eye_c, None), (lm[36], 36)):
        q = apply_points(p, geom)
        # the mark lands where apply_points says (weighted centroid of the warped dot)
        win = aug[int(q[1]) - 3:int(q[1]) + 4, int(q[0]) - 3:int(q[0]) + 4]
        ys, xs = np.mgrid[int(q[1]) - 3:int(q[1]) + 4, int(q[0]) - 3:int(q[0]) + 4]
        assert (np.average(xs, weights=win), np.average(ys, weights=win)) == pytest.approx(tuple(q), abs=0.6)
        u, v = int(round(q[0])), int(round(q[1]))
        if k is None:  # eye centre: the parsing map shows the eye on the side where it now is
            want = Lay.RIGHT_EYE if flip else Lay.LEFT_EYE
            assert parsing[0, v, u].tolist() == PARSING_PALETTE[want].tolist()
        else:          # corner 36 became index 45 (left-eye colour) after a flip
            region = "left_eye" if flip else "right_eye"
            assert marks[0, v, u].tolist() == list(LANDMARK_COLOURS[region])
    # the image-left half of the output holds the image-left-labelled eye, whatever the flip
    ys, xs = np.nonzero((parsing[0] == PARSING_PALETTE[Lay.LEFT_EYE]).all(-1))
    assert xs.size and xs.mean() < out_size / 2


def test_raw_footage_crops_follow_the_face_and_map_back(tmp_path):
    canvas = np.full((6, 240, 320, 3), 90, np.uint8)
    for k in range(6):
        canvas[k, 40 + 3 * k:40 + 3 * k + S, 100 + 5 * k:100 + 5 * k + S] = _face_frame()
    np.save(tmp_path / "x.npy", canvas)
    clip = tmp_path / "raw"
    clip.mkdir()
    for k, f in enumerate(canvas):
        cv2.imwrite(str(clip / f"{k:03d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    cfg = ExtractConfig(raw=True)
    cfg.crop.out_size = 128
    an = make_analyser(cfg)
    track, extra = extract_clip(clip, an, cfg)
    assert track.frame_hw == (128, 128) and track.valid.all() and extra["crop_found"].all()
    ct = CropTrack(extra["crop_centres"], extra["crop_sides"], extra["crop_found"], 128, (240, 320))
    direct = an.analyse(canvas, video=True).landmarks68              # the same faces found in the full frames
    back = np.stack([crop_to_frame(track.landmarks68[k], ct, k) for k in range(6)])
    assert np.abs(back - direct).mean() < 1.5
    # the crop centre follows the face's motion (3 px down, 5 px right per frame)
    assert np.diff(ct.centres, axis=0).mean(0) == pytest.approx([5, 3], abs=0.5)


def test_cli_extract_with_two_workers_and_manifest_clips(clips_dir, tmp_path):
    from finecliper.cli.main import main

    out = tmp_path / "c"
    assert main(["extract", "--clips", str(clips_dir), "--out", str(out), "--workers", "2"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == ["Happy/0001.npz", "clip2.npz"]
    assert main(["extract", "--clips", str(clips_dir), "--out", str(out), "facemesh.max_faces=2"]) == 2  # refused
    from finecliper.data.prepare import MANIFEST_FORMAT

    man = {"format": MANIFEST_FORMAT, "dataset": "dfew", "variant": ".", "splits": {}, "problems": [],
           "data_root": str(clips_dir), "clips_root": ".",
           "clips": {"0001": {"path": "Happy/0001", "num_frames": 5}, "9999": {"path": None, "num_frames": None}}}
    (tmp_path / "m.json").write_text(json.dumps(man))
    assert clips_from_manifest(tmp_path / "m.json") == [("0001", clips_dir / "Happy" / "0001")]
