"""PN scores, fusion weights, fused feature and loss against hand-computed values (Eqs. 8–11)."""
import math

import pytest
import torch

from finecliper.model.pn import fuse, fusion_weights, pn_scores, weighted_cross_entropy


def test_pn_scores_hand_computed():
    f = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    tp = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tn = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    # sample 0: cos(tp)=[1,0], cos(tn)=[0,1] -> [1,-1]; sample 1: [0.6,0.8]-[0.8,0.6] = [-0.2, 0.2]
    assert torch.allclose(pn_scores(f, tp, tn), torch.tensor([[1.0, -1.0], [-0.2, 0.2]]))
    # lambda = 0.5: [1-0, 0-0.5] and [0.6-0.4, 0.8-0.3]
    assert torch.allclose(pn_scores(f, tp, tn, lam=0.5), torch.tensor([[1.0, -0.5], [0.2, 0.5]]))


def test_fusion_weights_max_normalised_and_clamped():
    # M=2 modalities, B=2 samples, K=3 classes
    s = torch.tensor([[[0.3, 0.1, -0.2], [-0.5, -0.1, -0.3]],
                      [[0.1, 0.0, 0.0], [0.2, 0.6, 0.1]]])
    w = fusion_weights(s)
    # sample 0: g = [0.3, 0.1] -> [0.75, 0.25]; sample 1: g = [-0.1 -> 1e-6, 0.6] -> [~0, ~1]
    assert torch.allclose(w[0], torch.tensor([0.75, 0.25]))
    assert torch.allclose(w[1], torch.tensor([1e-6 / (0.6 + 1e-6), 0.6 / (0.6 + 1e-6)]))
    assert torch.allclose(w.sum(1), torch.ones(2))


def test_fusion_weights_have_no_gradient_and_respect_availability():
    s = torch.tensor([[[0.3, 0.1]], [[0.5, 0.2]]], requires_grad=True)
    w = fusion_weights(s, available=torch.tensor([[True], [False]]))
    assert not w.requires_grad
    assert torch.allclose(w, torch.tensor([[1.0, 0.0]]))
    ws = fusion_weights(s, mode="softmax", tau=0.1)
    e = [math.exp(3.0), math.exp(5.0)]
    assert torch.allclose(ws, torch.tensor([[e[0] / sum(e), e[1] / sum(e)]]))
    with pytest.raises(ValueError, match="unknown fusion"):
        fusion_weights(s, mode="mean")


@pytest.mark.parametrize("mode", ["max_norm", "softmax"])
def test_a_sample_with_no_usable_modality_gets_no_weight_and_no_nan(mode):
    # the middle level alone (parsing + landmarks) on a clip where no frame has a face: both unavailable
    s = torch.tensor([[[0.3, 0.1], [0.2, 0.4]], [[0.5, 0.2], [0.1, 0.0]]])  # (M=2, B=2, K=2)
    available = torch.tensor([[True, False], [True, False]])
    w = fusion_weights(s, available, mode=mode)
    assert torch.isfinite(w).all() and torch.equal(w[1], torch.zeros(2)) and torch.allclose(w[0].sum(), torch.tensor(1.0))
    loss = weighted_cross_entropy(s, w, torch.tensor([0, 1]), tau=0.01)
    assert torch.isfinite(loss) and torch.allclose(loss, weighted_cross_entropy(s[:, :1], w[:1], torch.tensor([0]), 0.01) / 2)


def test_fuse_is_weighted_sum_renormalised():
    f = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # (M=2, B=1, E=2)
    w = torch.tensor([[0.75, 0.25]])
    expected = torch.tensor([[0.75, 0.25]]) / math.hypot(0.75, 0.25)
    assert torch.allclose(fuse(f, w), expected)


def test_weighted_cross_entropy_hand_computed():
    s = torch.tensor([[[0.02, 0.0]], [[0.0, 0.01]]])  # (M=2, B=1, K=2)
    w = torch.tensor([[0.6, 0.4]])
    y = torch.tensor([0])
    tau = 0.01
    ce0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0)))
    ce1 = -math.log(math.exp(0.0) / (math.exp(0.0) + math.exp(1.0)))
    expected = 0.6 * ce0 + 0.4 * ce1
    assert math.isclose(float(weighted_cross_entropy(s, w, y, tau)), expected, rel_tol=1e-6)


def test_weighted_cross_entropy_averages_over_batch():
    s = torch.randn(3, 4, 5)
    w = torch.softmax(torch.randn(4, 3), dim=1)
    y = torch.tensor([0, 1, 2, 3])
    per = torch.stack([torch.nn.functional.cross_entropy(s[m] / 0.01, y, reduction="none") for m in range(3)])
    assert torch.allclose(weighted_cross_entropy(s, w, y, 0.01), (per * w.t()).sum(0).mean())


def test_fusion_floor_keeps_a_starved_branch_alive():
    # modality 1 has only negative scores: max_norm gives it ~0 weight, a floor of 0.1 gives it 0.1
    s = torch.tensor([[[0.3, 0.1]], [[-0.2, -0.4]], [[0.1, 0.0]]])  # (M=3, B=1, K=2)
    w = fusion_weights(s)
    assert w[0, 1] < 1e-5
    wf = fusion_weights(s, floor=0.1)
    # raw: [0.3, ~0, 0.1]/0.4 = [0.75, 0, 0.25]; floored: 0.7 * raw + 0.1
    assert torch.allclose(wf, torch.tensor([[0.625, 0.1, 0.275]]), atol=1e-5)
    assert torch.allclose(wf.sum(1), torch.ones(1))
    wa = fusion_weights(s, available=torch.tensor([[True], [False], [True]]), floor=0.1)
    assert wa[0, 1] == 0 and torch.allclose(wa.sum(1), torch.ones(1))
