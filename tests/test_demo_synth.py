"""The demo dataset in DFEW's layout: counts, labels, held-out identities, frames, and what the readers make of it."""
import json

import numpy as np
import pytest
from PIL import Image

from finecliper.data.splits import read_split
from finecliper.demo.animate import EXPRESSIONS
from finecliper.demo.synth import load_demo_dataset, load_truth, make_demo_dataset, split_identities


@pytest.fixture(scope="module")
def faces():
    from finecliper.demo.faces import load_faces

    return load_faces(4, 224)


@pytest.fixture(scope="module")
def dataset(faces, tmp_path_factory):
    found, skipped = faces
    root = tmp_path_factory.mktemp("demo") / "data"
    return make_demo_dataset(root, n_identities=4, clips_per_identity_per_class=2, frames=8, size=64, seed=3,
                             test_fraction=0.25, faces=found, skipped_photos=skipped)


def test_split_identities_is_seeded_disjoint_and_never_empty():
    names = [f"p{i}" for i in range(10)]
    train, test = split_identities(names, 0.3, seed=1)
    assert len(test) == 3 and len(train) == 7 and not set(train) & set(test) and set(train) | set(test) == set(names)
    assert (train, test) == split_identities(names, 0.3, seed=1)
    assert split_identities(names, 0.3, seed=2) != (train, test)
    assert [len(x) for x in split_identities(["a", "b"], 0.01, 0)] == [1, 1]  # at least one on each side
    with pytest.raises(ValueError, match="at least 2"):
        split_identities(["a"], 0.5, 0)


def test_dfew_layout_with_held_out_identities(dataset):
    root = dataset.root
    tr = read_split("dfew", root / "annotations", 1, "train")
    te = read_split("dfew", root / "annotations", 1, "test")
    assert len(tr) == 3 * 7 * 2 and len(te) == 1 * 7 * 2  # 4 identities, 1 held out, 2 clips per class
    assert sorted(int(r.label) for r in te) == sorted(list(range(7)) * 2)  # read back 0-based, every class twice
    lines = (root / "annotations/EmoLabel_DataSplit/test(single-labeled)/set_1.csv").read_text().splitlines()
    assert lines[0] == "video_name,label" and {ln.split(",")[1] for ln in lines[1:]} == {str(k) for k in range(1, 8)}
    by_id = {c.clip_id: c for c in dataset.clips}
    train_ids = {by_id[r.clip_id].identity for r in tr}
    test_ids = {by_id[r.clip_id].identity for r in te}
    assert not train_ids & test_ids and test_ids == set(dataset.test_identities) and len(test_ids) == 1
    for r in tr + te:  # the file's label is the clip's expression
        assert EXPRESSIONS[r.label] == by_id[r.clip_id].expression
    clip = root / "DFEW/Clip/clip_224x224" / te[0].clip_id
    jpgs = sorted(p.name for p in clip.iterdir())
    assert jpgs == [f"{t:05d}.jpg" for t in range(1, 9)]
    assert Image.open(clip / jpgs[0]).size == (64, 64)


def test_description_file_and_truth_round_trip(dataset):
    again = load_demo_dataset(dataset.root)
    assert [c.clip_id for c in again.clips] == [c.clip_id for c in dataset.clips]
    assert again.test_identities == dataset.test_identities
    info = json.loads((dataset.root / "demo_dataset.json").read_text())
    assert "synthetic" in info["what"] and info["config"]["frames"] == 8
    truth = load_truth(dataset.root)
    assert set(truth) == {c.clip_id for c in dataset.clips}
    pts = truth[dataset.clips[0].clip_id]
    assert pts.shape == (8, 68, 2) and np.isfinite(pts).all() and (pts > -5).all() and (pts < 69).all()
    p = dataset.clips[0].params  # the recorded parameters of the clip
    assert p["expression"] == dataset.clips[0].expression and p["n_frames"] == 8 and 0.7 <= p["intensity"] <= 1.3


def test_same_seed_same_clips_regardless_of_workers(faces, dataset, tmp_path):
    found, skipped = faces
    other = make_demo_dataset(tmp_path / "d2", n_identities=4, clips_per_identity_per_class=2, frames=8, size=64,
                              seed=3, test_fraction=0.25, faces=found, skipped_photos=skipped, workers=2)
    a, b = load_truth(dataset.root), load_truth(other.root)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(FileExistsError):
        make_demo_dataset(tmp_path / "d2", n_identities=4, frames=8, size=64, faces=found)


def test_bad_requests_name_the_problem(faces, tmp_path):
    found, _ = faces
    with pytest.raises(ValueError, match="only 4 shipped photos"):
        make_demo_dataset(tmp_path / "x", n_identities=5, frames=8, size=64, faces=found)
    with pytest.raises(ValueError, match="frames"):
        make_demo_dataset(tmp_path / "y", n_identities=2, frames=3, size=64, faces=found)
    with pytest.raises(FileNotFoundError, match="not a demo dataset"):
        load_demo_dataset(tmp_path)


def test_motion_scales_the_expression_and_fixes_or_shrinks_the_pose():
    from finecliper.demo.synth import Motion, clip_params

    def params(motion):
        return clip_params("happiness", 16, np.random.default_rng([5, 1]), motion)

    base, strong = params(Motion()), params(Motion(intensity_gain=3.0))
    assert strong.intensity == pytest.approx(3 * base.intensity) and strong.onset == base.onset  # the same draw
    assert base.rotation[0] != base.rotation[1]  # drift by default
    still = params(Motion(pose_drift=False))
    assert still.rotation == (base.rotation[0],) * 2 and still.scale == (base.scale[0],) * 2
    assert still.shift == (tuple(base.shift[0]),) * 2
    small = params(Motion(pose_drift=False, pose_scale=0.5))
    assert small.rotation[0] == pytest.approx(0.5 * base.rotation[0])
    assert small.scale[0] - 1 == pytest.approx(0.5 * (base.scale[0] - 1))
    assert small.shift[0][1] == pytest.approx(0.5 * base.shift[0][1])


def test_the_dataset_records_its_motion(dataset):
    info = json.loads((dataset.root / "demo_dataset.json").read_text())
    assert info["config"]["motion"] == {"intensity_gain": 1.0, "pose_drift": True, "pose_scale": 1.0}
