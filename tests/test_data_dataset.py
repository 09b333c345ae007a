import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from finecliper.config import load_config
from finecliper.data import augment as A
from finecliper.data.dataset import ClipDataset, ClipExtra, DataConfig, build_datasets, collate_clips
from finecliper.data.sampling import sample_segment_indices
from finecliper.data.splits import ClipRecord
from finecliper.data.synthetic import frame_level, write_frame_folder, write_video

S = 24


@pytest.fixture()
def clips(tmp_path):
    root = tmp_path / "clips"
    write_frame_folder(root / "00001", 40, S, S)
    write_frame_folder(root / "00002", 5, S, S)
    write_video(root / "00003.mp4", 33, S, S)
    write_frame_folder(root / "00004", 20, 30, 36)
    recs = [ClipRecord(f"0000{i}", f"0000{i}", i - 1, (i - 1,)) for i in range(1, 5)]
    return root, recs


def _unnormalise(x: torch.Tensor) -> np.ndarray:  # (T, 3, H, W) -> (T, H, W, 3) in 0..255
    mean = torch.tensor(A.CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(A.CLIP_STD).view(1, 3, 1, 1)
    return ((x * std + mean) * 255).permute(0, 2, 3, 1).numpy()


def test_eval_item_uses_segment_centres_and_is_deterministic(clips):
    root, recs = clips
    ds = ClipDataset(recs, root, train=False, num_frames=16, image_size=S)
    item = ds[0]
    assert item["frames"].shape == (16, 3, S, S) and item["frames"].dtype == torch.float32
    assert item["label"] == 0 and item["clip_id"] == "00001"
    assert item["indices"].dtype == torch.long
    assert item["indices"].tolist() == sample_segment_indices(40, 16, train=False).tolist()
    levels = _unnormalise(item["frames"]).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(levels, [frame_level(i) for i in item["indices"].tolist()], atol=1.5)
    assert torch.equal(ds[0]["frames"], item["frames"])
    short = ds[1]  # 5 frames, padded with the last
    assert short["indices"].tolist() == [0, 1, 2, 3, 4] + [4] * 11
    vid = ds[2]
    np.testing.assert_allclose(_unnormalise(vid["frames"]).mean(axis=(1, 2, 3)),
                               [frame_level(i) for i in vid["indices"].tolist()], atol=1.5)
    assert ds[3]["frames"].shape == (16, 3, S, S)  # 30x36 source resized to S x S


def test_train_rng_from_seed_epoch_index(clips):
    root, recs = clips
    mk = lambda: ClipDataset(recs, root, train=True, num_frames=8, image_size=S, augment="dfew", seed=3)
    a, b = mk(), mk()
    x, y = a[3], b[3]
    assert torch.equal(x["frames"], y["frames"]) and torch.equal(x["indices"], y["indices"])
    a.set_epoch(1)
    changed = [not torch.equal(a[i]["frames"], b[i]["frames"]) for i in range(4)]
    assert any(changed)
    b.set_epoch(1)
    assert torch.equal(a[0]["frames"], b[0]["frames"])


class RecordingExtra:
    """Renders a label map of each sampled frame index under the clip's geometry."""

    def load(self, record, indices, geom, src_hw):
        h, w = src_hw
        maps = np.stack([np.full((h, w), i + 1, np.uint8) for i in indices])
        out = A.apply_frames(maps[..., None], geom, interp="nearest")[..., 0]  # (T, S, S)
        return {"maps": torch.from_numpy(out.astype(np.int64)), "extra_hw": torch.tensor(src_hw)}


def test_extras_get_same_indices_and_geometry(clips):
    root, recs = clips
    ex = RecordingExtra()
    assert isinstance(ex, ClipExtra)
    ds = ClipDataset(recs, root, train=True, num_frames=8, image_size=S, augment="ferv39k", seed=0, extras=[ex])
    item = ds[3]
    assert item["extra_hw"].tolist() == [30, 36]
    # inside the rotated crop every map pixel carries its own frame's index (+1)
    m = item["maps"]
    for t in range(8):
        vals = set(m[t].unique().tolist()) - {0}
        assert vals == {item["indices"][t].item() + 1}

    class Clash:
        def load(self, record, indices, geom, src_hw):
            return {"label": torch.tensor(1)}
    with pytest.raises(KeyError, match="already in the item"):
        ClipDataset(recs, root, train=False, image_size=S, extras=[Clash()])[0]


def test_collate_and_workers_reproduce(clips):
    root, recs = clips
    ds = ClipDataset(recs, root, train=True, num_frames=4, image_size=S, augment="mafw", seed=5)
    b0 = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_clips, num_workers=0)))
    assert b0["frames"].shape == (4, 4, 3, S, S)
    assert b0["label"].tolist() == [0, 1, 2, 3] and b0["label"].dtype == torch.long
    assert b0["clip_id"] == ["00001", "00002", "00003", "00004"]
    b2 = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_clips, num_workers=2)))
    assert torch.equal(b0["frames"], b2["frames"]) and torch.equal(b0["indices"], b2["indices"])


def test_data_config_and_build_datasets(tmp_path, clips):
    root, recs = clips
    ann = tmp_path / "ann"
    d = ann / "EmoLabel_DataSplit"
    for split, rows in (("train", "1,1\n2,2\n3,7\n"), ("test", "4,4\n")):
        (d / f"{split}(single-labeled)").mkdir(parents=True)
        (d / f"{split}(single-labeled)" / "set_1.csv").write_text("video_name,label\n" + rows)
    y = tmp_path / "data.yaml"
    y.write_text(f"dataset: dfew\nannotations: {ann}\nroot: {tmp_path}\nvariant: clips\n")
    cfg = load_config(DataConfig, y, ["image_size=24", "num_frames=8"])
    assert cfg.augment_preset() == "dfew"
    tr, te = build_datasets(cfg)
    assert len(tr) == 3 and len(te) == 1 and tr.train and not te.train
    assert [r.label for r in tr.records] == [0, 1, 6]
    assert te[0]["frames"].shape == (8, 3, 24, 24)
