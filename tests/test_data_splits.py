import collections
from pathlib import PurePosixPath

import pytest

from finecliper.data.labels import LabelError
from finecliper.data.splits import SplitError, class_counts, locate_split, read_split

DFEW_TRAIN = [9356, 9356, 9357, 9358, 9361]
DFEW_TEST = [2341, 2341, 2340, 2339, 2336]
MAFW_TRAIN = [7333, 7335, 7339, 7340, 7341]
MAFW_TEST = [1839, 1837, 1833, 1832, 1831]


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_dfew_fold_counts_match_reference(annotations_dir, fold):
    tr = read_split("dfew", annotations_dir, fold, "train")
    te = read_split("dfew", annotations_dir, fold, "test")
    assert (len(tr), len(te)) == (DFEW_TRAIN[fold - 1], DFEW_TEST[fold - 1])
    assert not {r.clip_id for r in tr} & {r.clip_id for r in te}
    assert len(tr) + len(te) == 11697


def test_dfew_fold1_per_class_counts(annotations_dir):
    tr = read_split("dfew", annotations_dir, 1, "train")
    te = read_split("dfew", annotations_dir, 1, "test")
    assert class_counts(tr, 7) == [1956, 1515, 2135, 1738, 1175, 116, 721]
    assert class_counts(te, 7) == [489, 379, 534, 435, 294, 29, 181]
    assert class_counts(te, 7)[5] == 29  # disgust
    r = te[0]
    assert (r.clip_id, r.path, r.label, r.labels, r.num_frames) == ("00001", "00001", 1, (1,), None)


def test_dfew_label_base_checked_against_file(annotations_dir):
    # the shared copies are S2D's 0-based files
    assert locate_split("dfew", annotations_dir, 1, "test").layout == "s2d"
    with pytest.raises(SplitError, match=r"label_base=1 .* looks 0-based"):
        read_split("dfew", annotations_dir, 1, "test", label_base=1)
    assert read_split("dfew", annotations_dir, 1, "test", label_base=0)[0].label == 1


def test_dfew_official_one_based_file(tmp_path):
    d = tmp_path / "DFEW" / "EmoLabel_DataSplit" / "test(single-labeled)"
    d.mkdir(parents=True)
    (d / "set_2.csv").write_text("video_name,label\n1,1\n22,7\n300,3\n")
    recs = read_split("dfew", tmp_path, 2, "test")  # auto: official layout, base detected as 1
    assert [(r.clip_id, r.label) for r in recs] == [("00001", 0), ("00022", 6), ("00300", 2)]
    with pytest.raises(SplitError, match="looks 1-based"):
        read_split("dfew", tmp_path, 2, "test", label_base=0)
    (d / "set_3.csv").write_text("video_name,label\n1,2\n2,3\n")
    # no 0 and no 7: auto falls back to the layout's convention (official = 1-based)
    assert [r.label for r in read_split("dfew", tmp_path, 3, "test")] == [1, 2]
    assert [r.label for r in read_split("dfew", tmp_path, 3, "test", label_base=0)] == [2, 3]
    (d / "set_4.csv").write_text("video_name,label\n1,1\n2,9\n")
    with pytest.raises(SplitError, match=r"set_4.csv:3: label 9"):
        read_split("dfew", tmp_path, 4, "test", label_base=1)


def test_fold_and_file_errors(annotations_dir, tmp_path):
    with pytest.raises(SplitError, match="fold must be an integer 1..5"):
        read_split("dfew", annotations_dir, 6, "train")
    with pytest.raises(SplitError, match="one fixed"):
        read_split("ferv39k", annotations_dir, 2, "train")
    with pytest.raises(SplitError, match="not found under"):
        read_split("dfew", tmp_path, 1, "train")
    with pytest.raises(SplitError, match="split must be"):
        read_split("dfew", annotations_dir, 1, "val")


def test_ferv39k_counts_per_class(annotations_dir):
    tr = read_split("ferv39k", annotations_dir, None, "train")
    te = read_split("ferv39k", annotations_dir, 1, "test")
    assert (len(tr), len(te)) == (31088, 7847)
    assert class_counts(tr, 7) == [5854, 5523, 7790, 5906, 2502, 1833, 1680]
    assert class_counts(te, 7) == [1473, 1393, 1958, 1487, 638, 467, 431]
    r = te[0]  # Interview/Happy/0118,3 -- alphabetical id 3 = Happy -> canonical 0
    assert (r.path, r.label) == ("Interview/Happy/0118", 0)


def test_ferv39k_official_layout_and_folder_check(tmp_path):
    d = tmp_path / "4_setups" / "All_scenes"
    d.mkdir(parents=True)
    (d / "test_All.csv").write_text("Action/Angry/0004 Angry\nCrime/Fear/0010 Fear\n")
    recs = read_split("ferv39k", tmp_path, None, "test")
    assert [(r.path, r.label) for r in recs] == [("Action/Angry/0004", 3), ("Crime/Fear/0010", 6)]
    (d / "train_All.csv").write_text("Action/Angry/0004 Happy\n")
    with pytest.raises(SplitError, match=r"train_All.csv:1: folder emotion 'Angry' disagrees"):
        read_split("ferv39k", tmp_path, None, "train")


@pytest.mark.parametrize("fold", [1, 2, 3, 4, 5])
def test_mafw_single_fold_counts(annotations_dir, fold):
    assert len(read_split("mafw", annotations_dir, fold, "train")) == MAFW_TRAIN[fold - 1]
    assert len(read_split("mafw", annotations_dir, fold, "test")) == MAFW_TEST[fold - 1]


def test_mafw_fold1_train_per_class(annotations_dir):
    c = class_counts(read_split("mafw", annotations_dir, 1, "train"), 11)
    # happiness sadness neutral anger surprise disgust fear contempt anxiety helplessness disappointment
    assert c == [993, 1176, 910, 1112, 857, 511, 500, 188, 732, 209, 145]


def test_mafw_s2d_csv_layout_agrees_with_txt(annotations_dir):
    a = read_split("mafw", annotations_dir, 1, "train")
    b = read_split("mafw", annotations_dir, 1, "train", layout="s2d_csv")
    assert {r.clip_id: r.label for r in a} == {r.clip_id: r.label for r in b}


def test_mafw_captions_gbk(annotations_dir):
    tr = read_split("mafw", annotations_dir, 1, "train", captions=True)
    te = read_split("mafw", annotations_dir, 1, "test", captions=True)
    assert (len(tr), len(te)) == (6423, 1611)
    assert class_counts(tr, 11)[2] == 0 and class_counts(te, 11)[2] == 0  # no neutral
    r = tr[0]
    assert r.clip_id == "03747" and r.label == 3
    assert r.caption == "A man speaks excitedly to the man in front of him. The deep frown and the slightly wrinkled nose."
    assert r.caption_zh.startswith("一个男人")
    assert all(x.caption and "\r" not in x.caption for x in tr)


def test_caption_file_as_utf8_reads_the_same(annotations_dir, tmp_path):
    src = annotations_dir / "MAFW/anno/single/with_caption/set_1/test.txt"
    dst = tmp_path / "single/with_caption/set_1/test.txt"
    dst.parent.mkdir(parents=True)
    dst.write_text(src.read_bytes().decode("gbk"), encoding="utf-8")
    assert read_split("mafw", tmp_path, 1, "test", captions=True) == \
        read_split("mafw", annotations_dir, 1, "test", captions=True)
    dst.write_bytes(b"00001.mp4\tanger\t\xff\xff\xff\tA man.\r\n")  # neither UTF-8 nor GBK
    with pytest.raises(SplitError, match="neither UTF-8 nor GBK"):
        read_split("mafw", tmp_path, 1, "test", captions=True)


def test_mafw_compound(annotations_dir):
    tr = read_split("mafw", annotations_dir, 1, "train", compound=True)
    assert len(tr) == 7178
    distinct = collections.Counter(r.labels for r in tr)
    assert len(distinct) == 43 and sum(len(k) > 1 for k in distinct) == 32
    multi = [r for r in tr if len(r.labels) > 1]
    assert multi and all(r.label == -1 for r in multi)


def test_mafw_unknown_label_names_file_and_line(tmp_path):
    d = tmp_path / "MAFW" / "single" / "no_caption" / "set_1"
    d.mkdir(parents=True)
    (d / "train.txt").write_bytes(b"00001.mp4 anger\r\n00002.mp4 boredom\r\n")
    with pytest.raises(LabelError, match=r"train.txt:2: unknown emotion label 'boredom'"):
        read_split("mafw", tmp_path, 1, "train")


def test_dferclip_layout_keeps_frame_counts(tmp_path):
    peer_dir = str(PurePosixPath("/abs", "DFEW", "clip"))  # DFER-CLIP lists hold the author's absolute clip folders
    (tmp_path / "DFEW_set_1_train.txt").write_text(f"{peer_dir}/00012 87 3\n{peer_dir}/00013 12 0\n")
    recs = read_split("dfew", tmp_path, 1, "train")
    assert [(r.clip_id, r.num_frames, r.label) for r in recs] == [("00012", 87, 3), ("00013", 12, 0)]


def test_write_dfew_split_round_trips_through_the_reader(tmp_path):
    from finecliper.data.splits import write_dfew_split

    path = write_dfew_split(tmp_path, 2, "test", [("00007", 0), (12, 6), ("00013", 5)])
    assert path.read_text().splitlines() == ["video_name,label", "00007,1", "12,7", "00013,6"]  # 1-based on disk
    recs = read_split("dfew", tmp_path, 2, "test")
    assert [(r.clip_id, r.label) for r in recs] == [("00007", 0), ("00012", 6), ("00013", 5)]
