"""`finecliper describe` end to end: captions (real MAFW files), landmarks (a face cache), video-llava (tiny model)."""
import json
import re

import numpy as np
import pytest

from finecliper.cli.main import main
from finecliper.data.splits import read_split
from finecliper.text.desc_cache import read_cache
from finecliper.text.refine import find_emotion_words


@pytest.fixture(scope="module")
def test_ids(annotations_dir):
    """MAFW fold-1 test clips as the CLI orders them (by id); captions=True reads with_caption (no neutral)."""
    return sorted(read_split("mafw", annotations_dir, 1, "test", captions=True), key=lambda r: r.clip_id)


@pytest.fixture(scope="module")
def all_test_ids(annotations_dir):
    return sorted(read_split("mafw", annotations_dir, 1, "test"), key=lambda r: r.clip_id)


def describe(*argv):
    return main(["describe", *map(str, argv)])


def stderr(capsys) -> str:
    """What the command printed, with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().err.split())


def test_captions_backend_writes_refined_captions_resumes_and_audits(annotations_dir, test_ids, tmp_path, capsys):
    out = tmp_path / "mafw_captions.jsonl"
    common = ["--backend", "captions", "--dataset", "mafw", "--annotations", annotations_dir, "--fold", 1,
              "--split", "test", "--out", out]
    assert describe(*common, "--limit", 50) == 0
    header, entries = read_cache(out)
    assert header["backend"] == "captions" and header["leaks_label"] is False and len(entries) == 50
    for r in test_ids[:50]:
        e = entries[r.clip_id]
        assert e["raw"] == r.caption and find_emotion_words(e["text"]) == []
    assert describe(*common, "--audit") == 0  # the whole fold-1 test split; the first 50 are reused
    err = stderr(capsys)
    assert "described 1561, already cached 50, skipped 0" in err
    assert "mean" in err and "cut at 248: 0" in err
    assert "leakage audit: text-only label prediction over 1611 clips, 10 classes" in err
    assert len(read_cache(out)[1]) == 1611


def _face_cache(folder, clip_ids):
    from finecliper.face.backend import FaceTrack
    from finecliper.face.cache import cache_path, open_or_create, save_face_cache
    from test_text_landmarks import CORNERS, move, sequence

    manifest = open_or_create(folder, {"backend": "synthetic-test", "version": 1})
    for k, cid in enumerate(clip_ids):
        seq, rot = sequence(T=32, seed=k)
        if k == 0:
            seq = move(seq, rot, CORNERS, range(16, 32), dy=-0.10)
        T = len(seq)
        track = FaceTrack(landmarks68=seq.astype(np.float32), parsing=np.zeros((T, 8, 8), np.uint8),
                          boxes=np.zeros((T, 4), np.float32), valid=np.ones(T, bool),
                          confidence=np.ones(T, np.float32), n_faces=np.ones(T, np.int16),
                          reasons=np.zeros(T, np.uint8), frame_hw=(224, 224))
        save_face_cache(cache_path(folder, cid), track, clip_id=cid, extractor_hash=manifest["extractor_hash"])


def test_landmarks_backend_from_a_face_cache(annotations_dir, all_test_ids, tmp_path, capsys):
    ids = [r.clip_id for r in all_test_ids[:3]]
    _face_cache(tmp_path / "faces", ids[:2])  # the third clip has no face cache
    out = tmp_path / "lm.jsonl"
    args = ["--backend", "landmarks", "--dataset", "mafw", "--annotations", annotations_dir, "--fold", 1,
            "--split", "test", "--limit", 3, "--face-cache", tmp_path / "faces", "--out", out]
    assert describe(*args) == 1  # one clip skipped
    err = stderr(capsys)
    assert f"skipped {ids[2]}" in err and "face cache file not found" in err
    _, entries = read_cache(out)
    assert entries[ids[0]]["text"] == "The mouth corners pull up in the second half of the clip."
    assert [m["name"] for m in entries[ids[0]]["motions"]] == ["lip_corner_pull"]
    assert entries[ids[1]]["text"] == "No clear facial movement is visible in the clip."
    assert entries[ids[0]]["prompt_hash"] is None and entries[ids[0]]["leaks_label"] is False
    # another backend on the same file is refused, with the reason
    assert describe("--backend", "captions", "--dataset", "mafw", "--annotations", annotations_dir, "--fold", 1,
                    "--split", "test", "--limit", 3, "--out", out) == 2
    assert "backend: cache has 'landmarks', now 'captions'" in stderr(capsys)


def _track(landmarks, depth=None):
    from finecliper.face.backend import FaceTrack

    T = len(landmarks)
    extra = {} if depth is None else {"depth68": depth.astype(np.float32)}
    return FaceTrack(landmarks68=landmarks.astype(np.float32), parsing=np.zeros((T, 8, 8), np.uint8),
                     boxes=np.zeros((T, 4), np.float32), valid=np.ones(T, bool), confidence=np.ones(T, np.float32),
                     n_faces=np.ones(T, np.int16), reasons=np.zeros(T, np.uint8), frame_hw=(512, 512), **extra)


def test_landmarks_backend_reads_depth68_and_its_identity_follows_the_describer(tmp_path, monkeypatch):
    import dataclasses

    from finecliper.face.cache import cache_path, open_or_create, save_face_cache
    from finecliper.text import describe as D
    from test_text_landmarks_3d import ellipsoid_face, head_motion_clip

    face = ellipsoid_face()
    landmarks, depth = head_motion_clip(face - face.mean(0))
    folder = tmp_path / "faces"
    manifest = open_or_create(folder, {"backend": "synthetic-test", "version": 1})
    track = _track(landmarks)  # no depth: all NaN, as FaceXFormer's caches
    save_face_cache(cache_path(folder, "with"), _track(landmarks, depth), clip_id="with",
                    extractor_hash=manifest["extractor_hash"])
    save_face_cache(cache_path(folder, "without"), track, clip_id="without", extractor_hash=manifest["extractor_hash"])
    backend = D.LandmarksBackend(folder, fps=25.0)
    items = [D.ClipItem("with"), D.ClipItem("without")]
    inputs = [backend.load(it) for it in items]
    assert inputs[1].depth is None and np.allclose(inputs[0].depth, depth, atol=0.05)  # float16 in the cache
    (text3d, extra3d), (text2d, extra2d) = backend.generate(inputs, items)
    assert extra3d["alignment"] == "3d" and text3d == "No clear facial movement is visible in the clip."
    assert {m["name"] for m in extra3d["head_motions"]} == {"head_tilt_back", "head_turn_left", "head_tilt_left"}
    assert extra3d["head_text"].startswith("The head turns to the subject's left")
    assert extra2d["alignment"] == "2d" and text2d != text3d  # the turn reads as movement without depth
    assert np.array_equal(D.track_depth(_track(landmarks, depth)), depth.astype(np.float32))
    # the description cache's identity follows the describer's version and every one of its rules
    other = D.LandmarksBackend(folder, fps=25.0, params=dataclasses.replace(D.LD.DEFAULT_PARAMS, seconds_from_s=1.0))
    assert other.model_hash != backend.model_hash
    assert other.generate(inputs[1:], items[1:])[0][0] != text2d  # and reaches the describer: times in seconds
    monkeypatch.setattr(D, "DESCRIBER_VERSION", D.DESCRIBER_VERSION + 1)
    assert D.LandmarksBackend(folder, fps=25.0).model_hash != backend.model_hash


def test_video_llava_backend_cli_label_free_then_label_conditioned(annotations_dir, all_test_ids, tmp_path, capsys):
    test_ids = all_test_ids
    from PIL import Image
    from test_text_video_llava import build_tiny_model

    model = build_tiny_model(tmp_path / "model")
    root = tmp_path / "frames"
    rng = np.random.default_rng(0)
    for r in test_ids[:2]:
        (root / r.clip_id).mkdir(parents=True)
        for j in range(10):
            Image.fromarray(rng.integers(0, 256, (36, 30, 3), dtype=np.uint8)).save(root / r.clip_id / f"{j}.png")
    base = ["--backend", "video-llava", "--dataset", "mafw", "--annotations", annotations_dir, "--fold", 1,
            "--split", "test", "--limit", 2, "--data-root", root, "--model", model, "--batch-size", 2,
            "--max-new-tokens", 5]
    free = tmp_path / "free.jsonl"
    assert describe(*base, "--out", free) == 0
    header, entries = read_cache(free)
    assert header["leaks_label"] is False and len(entries) == 2
    assert all("label" not in e for e in entries.values())
    assert json.loads(free.read_text().splitlines()[0])["metadata"]["prompt"].startswith("You are a facial expression analyst")
    # the same clips as a plain folder: same ids (the folder names), same frames, same texts
    folder = tmp_path / "folder.jsonl"
    assert describe("--backend", "video-llava", "--clips", root, "--model", model, "--batch-size", 2,
                    "--max-new-tokens", 5, "--out", folder) == 0
    f_header, f_entries = read_cache(folder)
    assert f_header["dataset"] == "frames" and f_header["leaks_label"] is False
    assert {k: e["raw"] for k, e in f_entries.items()} == {k: e["raw"] for k, e in entries.items()}
    leak = tmp_path / "leak.jsonl"
    assert describe(*base, "--label-conditioned", "--out", leak) == 0
    header, entries = read_cache(leak)
    assert header["leaks_label"] is True and header["prompt_hash"] != read_cache(free)[0]["prompt_hash"]
    assert [entries[r.clip_id]["label"] for r in test_ids[:2]] == [_name(r) for r in test_ids[:2]]
    assert "leak the label" in stderr(capsys)
    assert describe(*base, "--out", leak) == 2  # label-free into a leaking cache: refused
    assert "leaks_label: cache has True, now False" in stderr(capsys)


def _name(rec):
    from finecliper.data.labels import classes

    return "_".join(classes("mafw")[y] for y in rec.labels)


def test_argument_errors(annotations_dir, tmp_path, capsys):
    assert describe("--backend", "landmarks", "--dataset", "mafw", "--annotations", annotations_dir,
                    "--out", tmp_path / "x.jsonl") == 2
    assert "needs --face-cache" in stderr(capsys)
    assert describe("--backend", "captions", "--dataset", "dfew", "--annotations", annotations_dir,
                    "--fold", 1, "--out", tmp_path / "y.jsonl") == 2
    assert "needs MAFW" in stderr(capsys)
    assert describe("--backend", "landmarks", "--label-conditioned", "--dataset", "mafw", "--annotations",
                    annotations_dir, "--face-cache", tmp_path, "--out", tmp_path / "z.jsonl") == 2
    assert "only applies to --backend video-llava" in stderr(capsys)


def test_manifest_input_gives_paths_and_labels(annotations_dir, all_test_ids, tmp_path):
    """--manifest: clip paths from `prepare`'s manifest, labels from the split files it names."""
    from finecliper.text.describe import ClipItem

    from finecliper.cli.describe import collect_items

    ids = [r.clip_id for r in all_test_ids[:2]]
    manifest = {"format": "finecliper-manifest/1", "dataset": "mafw", "variant": "faces",
                "annotations_root": str(annotations_dir), "data_root": str(tmp_path), "clips_root": "faces",
                "options": {"layout": "auto", "label_base": "auto", "captions": False, "compound": False},
                "splits": {"fold1/train": {}, "fold1/test": {}}, "problems": [],
                "clips": {cid: {"path": cid, "num_frames": 10} for cid in ids}}
    path = tmp_path / "manifest_mafw_faces.json"
    path.write_text(json.dumps(manifest))

    class Args:
        backend, limit, data_root, clips = "landmarks", None, None, None

    Args.manifest = str(path)
    ds, items = collect_items(Args)
    assert ds == "mafw" and len(items) == 9172  # fold 1 train + test, single-label
    by_id = {it.clip_id: it for it in items}
    rec = all_test_ids[0]
    assert by_id[rec.clip_id] == ClipItem(rec.clip_id, tmp_path / "faces" / rec.clip_id, _name(rec), None)
    assert sum(it.frames is not None for it in items) == 2  # only clips the manifest found on disk


# ----------------------------------------------------------------------------- a plain folder of clips

def _animated(face, expression, n_frames, onset, apex, size=112):
    """Frames (T, size, size, 3) of ``face`` making ``expression`` between ``onset`` and ``apex``, no pose drift."""
    from finecliper.demo.animate import ClipParams, animate

    p = ClipParams(expression=expression, n_frames=n_frames, intensity=1.0, onset=onset, apex=apex, release=0.0,
                   rotation=(0.0, 0.0), scale=(1.0, 1.0), shift=((0.0, 0.0), (0.0, 0.0)), contrast=1.0,
                   brightness=0.0, seed=0)
    return animate(face.image, face.mesh, p, size)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """clips/talk.mp4: 5 s at 25 fps, still for 2 s, then the jaw drops and the brows rise (held);
    clips/still/: 16 frames of a face that does not move. Face cache by `finecliper extract --clips`."""
    from PIL import Image

    from finecliper.data.frames import write_video
    from finecliper.demo.faces import load_faces

    (face,), _ = load_faces(1, 224)  # the astronaut
    root = tmp_path_factory.mktemp("describe_clips")
    clips = root / "clips"
    (clips / "still").mkdir(parents=True)
    write_video(clips / "talk.mp4", _animated(face, "surprise", 125, onset=50, apex=58), 25, crf=12)
    for k, frame in enumerate(_animated(face, "neutral", 16, onset=0, apex=8)):
        Image.fromarray(frame).save(clips / "still" / f"{k:03d}.png")
    assert main(["extract", "--clips", str(clips), "--out", str(root / "faces")]) == 0
    return clips, root / "faces"


def test_describe_a_plain_folder_of_clips(clip_folder, tmp_path, capsys):
    clips, faces = clip_folder
    out = tmp_path / "d.jsonl"
    assert describe("--backend", "landmarks", "--clips", clips, "--face-cache", faces, "--fps", 10, "--out", out) == 0
    header, entries = read_cache(out)
    assert header["dataset"] == "clips" and sorted(entries) == ["still", "talk"]
    talk, still = entries["talk"], entries["still"]
    assert talk["fps"] == 25.0 and still["fps"] == 10.0  # the video's own rate; --fps for the frame folder
    assert still["text"] == "No clear facial movement is visible in the clip."
    # 5 s: times in seconds; the expression starts at 2.0-2.3 s and is held to the end
    assert re.search(r"the mouth opens.* from 2\.[0-4] s to 5\.0 s\.", talk["text"].lower()), talk["text"]
    assert "brows rise" in talk["text"] and find_emotion_words(talk["text"]) == []
    assert talk["alignment"] == "3d"  # the face-mesh backend measures depth
    assert "described 2, already cached 0, skipped 0" in stderr(capsys)
    # resumes: nothing to do the second time
    assert describe("--backend", "landmarks", "--clips", clips, "--face-cache", faces, "--fps", 10, "--out", out) == 0
    assert "described 0, already cached 2" in stderr(capsys)


def test_describe_clips_missing_from_the_face_cache_is_one_error(clip_folder, tmp_path, capsys):
    import shutil

    clips, faces = clip_folder
    more = tmp_path / "more"
    shutil.copytree(clips, more)
    for name in ("a", "b", "c", "d", "e", "f"):
        shutil.copytree(more / "still", more / "new" / name)
    out = tmp_path / "d.jsonl"
    assert describe("--backend", "landmarks", "--clips", more, "--face-cache", faces, "--out", out) == 2
    err = stderr(capsys)
    assert (f"6 of 8 clips have no face cache in {faces} (new/a, new/b, new/c, new/d, new/e, ...); "
            f"run `finecliper extract --clips {more} --out {faces}` first") in err
    assert not out.exists()  # nothing started
    assert describe("--backend", "captions", "--clips", more, "--out", out) == 2
    assert "needs MAFW" in stderr(capsys)
