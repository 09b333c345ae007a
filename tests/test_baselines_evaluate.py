"""End-to-end baseline evaluation on a tiny generated DFEW-layout dataset: same sampler, same reports."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from finecliper.baselines.base import FaceCropConfig, aggregate_clip, crop_faces, map_to_dataset, score_clips
from finecliper.baselines.evaluate import evaluate_baseline, side_by_side
from finecliper.baselines.fer_tflite import FerClassifier
from finecliper.data import labels as L
from finecliper.data.dataset import DataConfig
from finecliper.data.frames import open_frames
from finecliper.data.sampling import sample_segment_indices
from finecliper.face.backend import FaceTrack
from finecliper.face.cache import FaceCacheError, cache_path, extractor_hash, make_manifest, save_face_cache
from finecliper.io import write_json
from synthetic import make_dfew_like

REPORT_FILES = ("test_confusion.csv", "test_confusion.png", "test_per_class.csv", "test_per_class.md",
                "test_summary.json", "predictions.json")
HAPPY_CLIP = "00008"   # first test clip: canonical label 0 = happiness
SAD_CLIP = "00009"


def astronaut_frames(n: int, size: int = 96) -> list[np.ndarray]:
    from skimage import data

    img = data.astronaut()
    out = []
    for k in range(n):
        dx, dy = int(6 * np.sin(k / 3)), int(4 * np.cos(k / 4))
        out.append(cv2.resize(img[30 + dy:230 + dy, 125 + dx:325 + dx], (size, size), interpolation=cv2.INTER_AREA))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """7 test clips of noise (no face) except clip 00008 (happiness), a smiling face."""
    root = tmp_path_factory.mktemp("dfew")
    ann, data = make_dfew_like(root, n_train_per_class=1, n_test_per_class=1, size=32, frames=(10, 20), seed=3)
    clip = data / "Clip" / "clip_224x224" / HAPPY_CLIP
    for f in clip.iterdir():
        f.unlink()
    for i, fr in enumerate(astronaut_frames(20)):
        cv2.imwrite(str(clip / f"{i + 1:05d}.jpg"), cv2.cvtColor(fr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cfg = DataConfig(dataset="dfew", annotations=str(ann), root=str(data))
    return cfg, data / "Clip" / "clip_224x224"


@pytest.fixture(scope="module")
def fer():
    return FerClassifier()


def write_cache(cache, clips_dir, invalid_clips=(SAD_CLIP,), hw_override=None):
    """A face cache by hand: box = the centre 80 % of each frame; every 3rd frame invalid;
    clips in ``invalid_clips`` have no valid frame."""
    info = {"backend": "hand-made test cache"}
    write_json(cache / "cache_manifest.json", make_manifest(info))
    for folder in sorted(p for p in clips_dir.iterdir() if p.is_dir()):
        src = open_frames(folder)
        h, w = src.read([0]).shape[1:3]
        t = src.num_frames
        valid = (np.arange(t) % 3 != 1) & (folder.name not in invalid_clips)
        box = np.array([0.1 * w, 0.1 * h, 0.9 * w - 1, 0.9 * h - 1], np.float32)
        track = FaceTrack(landmarks68=np.zeros((t, 68, 2), np.float32), parsing=np.zeros((t, 8, 8), np.uint8),
                          boxes=np.tile(box, (t, 1)), valid=valid, confidence=valid.astype(np.float32),
                          n_faces=valid.astype(np.int16), reasons=(~valid).astype(np.uint8),
                          frame_hw=hw_override or (h, w))
        save_face_cache(cache_path(cache, folder.name), track, clip_id=folder.name, extractor_hash=extractor_hash(info))
    return cache


def test_without_cache_facemesh_finds_the_face_and_fer_the_smile(dataset, fer, tmp_path):
    cfg, _ = dataset
    s = evaluate_baseline(fer, cfg, 1, None, tmp_path, num_frames=8)
    for f in REPORT_FILES:
        assert (tmp_path / f).stat().st_size > 0, f
    pred = json.loads((tmp_path / "predictions.json").read_text())
    happy = pred["clip_ids"].index(HAPPY_CLIP)
    assert pred["preds"][happy] == 0 and pred["valid_frames"][happy] == 8
    # noise clips have no face: 6 misses, the face clip a hit -> recall 1 for happiness, 0 elsewhere
    assert s["n"] == 7 and s["n_no_prediction"] == 6
    assert s["uar"] == pytest.approx(1 / 7) and s["war"] == pytest.approx(1 / 7)
    assert s["unpredictable_classes"] == [] and s["face_source"].startswith("facemesh")
    assert s["baseline"]["name"] == "fer" and s["fold"] == 1


def test_with_cache_uses_eval_sampler_and_cache_boxes(dataset, fer, tmp_path):
    cfg, clips_dir = dataset
    cache = write_cache(tmp_path / "cache", clips_dir)
    out = tmp_path / "report"
    s = evaluate_baseline(fer, cfg, 1, str(cache), out, num_frames=16, mode="mean")
    for f in REPORT_FILES:
        assert (out / f).stat().st_size > 0, f
    pred = json.loads((out / "predictions.json").read_text())
    assert s["n_no_prediction"] == 1 and pred["preds"][pred["clip_ids"].index(SAD_CLIP)] == -1
    # the summary's scores are those of the written predictions, no-prediction counted as a miss
    ref = score_clips(pred["labels"], pred["preds"], 7)
    assert s["uar"] == pytest.approx(ref["uar"]) and s["war"] == pytest.approx(ref["war"])
    assert json.loads((out / "test_summary.json").read_text())["war"] == pytest.approx(ref["war"])
    # one clip recomputed by hand: segment centres, cache boxes of those frames, fer, mean, DFEW order
    src = open_frames(clips_dir / HAPPY_CLIP)
    idx = sample_segment_indices(src.num_frames, 16, train=False)
    valid = idx % 3 != 1
    frames = src.read(idx)
    box = np.array([0.1 * 96, 0.1 * 96, 0.9 * 96 - 1, 0.9 * 96 - 1], np.float32)
    crops = crop_faces(frames[valid], np.tile(box, (int(valid.sum()), 1)), FaceCropConfig())
    clip = map_to_dataset(aggregate_clip(fer.predict_proba(crops)), fer.class_names, fer.mapping, L.classes("dfew"))
    np.testing.assert_allclose(pred["probs"][pred["clip_ids"].index(HAPPY_CLIP)], clip, atol=1e-5)
    assert pred["valid_frames"][pred["clip_ids"].index(HAPPY_CLIP)] == int(valid.sum())
    # side by side with itself: same clips, same numbers
    md = side_by_side({"fer": s, "fer again": json.loads((out / "test_summary.json").read_text())})
    assert md.count(f"{100 * s['war']:.2f}") >= 2


def test_cache_for_other_frames_is_refused_naming_the_file(dataset, fer, tmp_path):
    cfg, clips_dir = dataset
    cache = write_cache(tmp_path / "cache", clips_dir, hw_override=(224, 224))
    with pytest.raises(FaceCacheError, match=r"00008\.npz.*224x224 frames"):
        evaluate_baseline(fer, cfg, 1, str(cache), tmp_path / "r")
    cache = write_cache(tmp_path / "cache2", clips_dir)
    (cache / f"{HAPPY_CLIP}.npz").unlink()
    with pytest.raises(FaceCacheError, match=r"no face cache for clip '00008'.*finecliper extract"):
        evaluate_baseline(fer, cfg, 1, str(cache), tmp_path / "r")
    with pytest.raises(FaceCacheError, match="cache_manifest.json not found"):
        evaluate_baseline(fer, cfg, 1, str(tmp_path), tmp_path / "r")


def test_cli_evaluate_baseline_fer(dataset, tmp_path, capsys):
    from finecliper.cli.main import main

    cfg, clips_dir = dataset
    cache = write_cache(tmp_path / "cache", clips_dir)
    out = tmp_path / "fer_{fold}"
    rc = main(["evaluate", "--baseline", "fer", "--baseline-mode", "vote", "--folds", "1", "--out", str(out),
               f"data.annotations={cfg.annotations}", f"data.root={cfg.root}", f"face_cache={cache}",
               "data.num_frames=8"])
    assert rc == 0
    summary = json.loads((tmp_path / "fer_1" / "test_summary.json").read_text())
    assert summary["mode"] == "vote" and summary["num_frames"] == 8 and summary["n"] == 7
    printed = capsys.readouterr().out
    assert f"UAR {100 * summary['uar']:.2f}" in printed and "1 without a face" in printed
    assert main(["evaluate", f"data.annotations={cfg.annotations}"]) == 2
    assert "error: finecliper evaluate: --checkpoint is required" in capsys.readouterr().err


def test_benchmark_function_runs_real_work():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "baselines.py"
    spec = importlib.util.spec_from_file_location("bench_baselines", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.benchmark_baseline(n_clips=2, num_frames=4, size=96, detect=False)
    assert r["happy_share"] == 1.0 and r["no_prediction"] == 0 and r["cache_clips_per_s"] > 0
