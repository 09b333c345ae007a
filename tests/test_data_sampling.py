import numpy as np
import pytest

from finecliper.data.sampling import sample_segment_indices


def test_eval_segment_centres_hand_computed():
    # n=40: tick=2.5, floor(1.25 + 2.5k)
    assert sample_segment_indices(40, 16, train=False).tolist() == \
        [1, 3, 6, 8, 11, 13, 16, 18, 21, 23, 26, 28, 31, 33, 36, 38]
    # n=17: tick=1.0625, floor(0.53125 + 1.0625k) skips frame 8
    assert sample_segment_indices(17, 16, train=False).tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16]
    assert sample_segment_indices(16, 16, train=False).tolist() == list(range(16))
    assert sample_segment_indices(9, 4, train=False).tolist() == [1, 3, 5, 7]  # tick 2.25: 1.125, 3.375, 5.625, 7.875


def test_short_clip_padding_modes():
    assert sample_segment_indices(5, 8, train=False).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_segment_indices(5, 8, train=False, pad="first").tolist() == [0, 1, 2, 3, 4, 0, 0, 0]
    assert sample_segment_indices(5, 8, train=False, pad="loop").tolist() == [0, 1, 2, 3, 4, 0, 1, 2]
    rng = np.random.default_rng(0)
    assert sample_segment_indices(5, 8, train=True, rng=rng).tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_segment_indices(1, 4, train=False).tolist() == [0, 0, 0, 0]


def test_train_one_random_frame_per_segment():
    # n=40, T=16: avg=2, idx_k = 2k + U{0,1}; same draw as rng.integers(0, 2, 16)
    got = sample_segment_indices(40, 16, train=True, rng=np.random.default_rng(7))
    want = np.arange(16) * 2 + np.random.default_rng(7).integers(0, 2, size=16)
    assert got.tolist() == want.tolist()
    # n=20: avg=1, frames 16..19 are never used (DFER-CLIP behaviour)
    assert sample_segment_indices(20, 16, train=True, rng=np.random.default_rng(1)).tolist() == list(range(16))


def test_train_offsets_cover_each_segment():
    rng = np.random.default_rng(3)
    draws = np.stack([sample_segment_indices(53, 16, train=True, rng=rng) for _ in range(300)])  # avg=3
    assert draws.min() == 0 and draws.max() == 47
    offs = draws - np.arange(16) * 3
    assert set(np.unique(offs)) == {0, 1, 2}
    assert (np.diff(draws, axis=1) > 0).all()


def test_errors():
    with pytest.raises(ValueError, match="0 frames"):
        sample_segment_indices(0, 16)
    with pytest.raises(ValueError, match="rng"):
        sample_segment_indices(40, 16, train=True)
    with pytest.raises(ValueError, match="pad"):
        sample_segment_indices(3, 16, pad="mirror")
