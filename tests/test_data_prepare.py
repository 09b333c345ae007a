import json

import pytest

from finecliper.cli.main import main
from finecliper.data.prepare import ManifestError, load_manifest, prepare, write_manifest
from finecliper.data.synthetic import write_frame_folder, write_video


@pytest.fixture()
def dataset(tmp_path):
    """DFER-CLIP-style DFEW lists (they carry frame counts) + a clip_224x224 variant with faults."""
    ann = tmp_path / "ann"
    ann.mkdir()
    peer_dir = "/x"  # DFER-CLIP lists hold the absolute clip folders of the author's machine
    (ann / "DFEW_set_1_train.txt").write_text(
        "".join(f"{peer_dir}/{c} {n} {y}\n" for c, n, y in [("00001", 20, 0), ("00002", 12, 1), ("00003", 9, 2), ("00004", 30, 3)]))
    (ann / "DFEW_set_1_test.txt").write_text(
        "".join(f"{peer_dir}/{c} {n} {y}\n" for c, n, y in [("00005", 18, 4), ("00006", 10, 5), ("00007", 3, 6)]))
    clips = tmp_path / "DFEW" / "Clip" / "clip_224x224"
    write_frame_folder(clips / "00001", 20, 16, 16)            # ok
    write_frame_folder(clips / "00002", 11, 16, 16)            # annotation says 12
    (clips / "00003").mkdir(parents=True)                      # empty folder
    # 00004 missing
    write_video(clips / "00005.mp4", 18, 16, 16)               # ok (video)
    d = write_frame_folder(clips / "00006", 10, 16, 16)
    (d / "4.jpg").write_bytes(b"garbage")                      # unreadable frame at a sampled index
    write_frame_folder(clips / "00007", 3, 16, 16)             # short: fine unless min_frames > 3
    return ann, tmp_path / "DFEW"


def test_prepare_lists_every_problem(dataset, tmp_path):
    ann, root = dataset
    m = prepare("dfew", ann, root, "clip_224x224", folds=[1], min_frames=4)
    assert m["clips_root"] == "Clip/clip_224x224"
    assert m["splits"]["fold1/train"]["count"] == 4 and m["splits"]["fold1/test"]["count"] == 3
    assert m["splits"]["fold1/train"]["per_class"]["happiness"] == 1
    kinds = {(p["clip_id"], p["kind"]) for p in m["problems"]}
    assert kinds == {("00002", "frame_count_mismatch"), ("00003", "empty"), ("00004", "missing"),
                     ("00006", "unreadable"), ("00007", "too_few_frames")}
    assert m["problem_counts"] == {"frame_count_mismatch": 1, "empty": 1, "missing": 1, "unreadable": 1,
                                   "too_few_frames": 1}
    assert m["clips"]["00001"] == {"path": "00001", "num_frames": 20}
    assert m["clips"]["00005"] == {"path": "00005.mp4", "num_frames": 18}
    assert m["clips"]["00004"] == {"path": None, "num_frames": None}
    fc = m["frame_counts"]
    assert (fc["clips"], fc["min"], fc["max"], fc["shorter_than_16"]) == (5, 3, 20, 3)  # 20, 11, 18, 10, 3
    assert next(p for p in m["problems"] if p["kind"] == "unreadable")["splits"] == ["fold1/test"]
    assert "4.jpg" in next(p for p in m["problems"] if p["kind"] == "unreadable")["message"]

    path = write_manifest(m, tmp_path / "out")
    man = load_manifest(path)
    assert man.dataset == "dfew" and man.frame_counts()["00002"] == 11
    assert man.clip_paths()["00005"] == "00005.mp4" and "00004" not in man.clip_paths()
    assert man.bad_clip_ids() == {"00002", "00003", "00004", "00006", "00007"}


def test_count_only_check_skips_decoding(dataset):
    ann, root = dataset
    m = prepare("dfew", ann, root, "clip_224x224", folds=[1], check="count")
    assert "unreadable" not in m["problem_counts"] and "too_few_frames" not in m["problem_counts"]


def test_cli_writes_manifest_and_strict_fails(dataset, tmp_path, capsys):
    ann, root = dataset
    out = tmp_path / "out"
    args = ["prepare", "--dataset", "dfew", "--annotations", str(ann), "--data-root", str(root),
            "--variant", "clip_224x224", "--fold", "1", "--out", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "missing" in text and "manifest written" in text
    data = json.loads((out / "manifest_dfew_clip_224x224.json").read_text())
    assert data["variant"] == "clip_224x224" and data["data_root"] == str(root)
    assert len(data["problems"]) == 4
    assert main(args + ["--strict"]) == 1
    capsys.readouterr()
    bad = [a if a != "clip_224x224" else "jpg_256" for a in args]
    assert main(bad) == 2  # variant folder absent
    assert "frame variant 'jpg_256' not found" in capsys.readouterr().err


def test_load_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "m.json")
    (tmp_path / "m.json").write_text('{"format": "other"}')
    with pytest.raises(ManifestError, match="not a finecliper manifest"):
        load_manifest(tmp_path / "m.json")
    (tmp_path / "m.json").write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path / "m.json")
