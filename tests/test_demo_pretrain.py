"""The demo's contrastive pre-training of the tiny CLIP: batches of whole identities, CLIP's loss with shared
positives, learning from pictures and text alone (labels cannot change the result)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from finecliper.clip.tokenizer import load_tokenizer
from finecliper.demo.pretrain import contrastive_loss, identity_batches, pretrain_clip
from finecliper.model.shapes import clip_config, random_clip

S, T = 32, 2


def test_identity_batches_hold_whole_identities_and_cover_every_clip_once():
    ids = ["a", "b", "a", "c", "b", "d", "a", "c", "e"]
    batches = identity_batches(ids, 2, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(len(ids)))
    for b in batches:
        names = {ids[i] for i in b}
        assert len(names) <= 2 and all(sum(1 for i in b if ids[i] == n) == ids.count(n) for n in names)
    assert len(batches) == 3


def test_contrastive_loss_is_clips_and_shares_the_target_between_equal_texts():
    img = F.normalize(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), dim=-1)
    txt = F.normalize(torch.tensor([[1.0, 0.2], [0.3, 1.0], [0.3, 1.0]]), dim=-1)
    scale = torch.tensor(10.0)
    logits = scale * img @ txt.t()
    eye = torch.eye(3, dtype=torch.bool)
    clip = 0.5 * (F.cross_entropy(logits, torch.arange(3)) + F.cross_entropy(logits.t(), torch.arange(3)))
    assert contrastive_loss(img, txt, scale, eye) == pytest.approx(float(clip), abs=1e-6)
    same = eye.clone()
    same[1, 2] = same[2, 1] = True  # clips 1 and 2 have the same description
    target = torch.tensor([[1, 0, 0], [0, 0.5, 0.5], [0, 0.5, 0.5]])
    expected = 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.t().log_softmax(1)).sum(1).mean())
    assert contrastive_loss(img, txt, scale, same) == pytest.approx(float(expected), abs=1e-6)


def toy_items(labels: list[int]) -> list[dict]:
    """Clips whose pictures and descriptions both follow a hidden 'expression' (not the label given)."""
    texts = ["the mouth corners rise", "the brows lower", "the jaw drops", "no clear movement"]
    tokens = load_tokenizer()(texts, context_length=77)
    g = torch.Generator().manual_seed(0)
    items = []
    for i, label in enumerate(labels):
        k = i % 4
        img = torch.randn(T, 3, S, S, generator=g) * 0.3
        img[:, k % 3, : S // 2 * (1 + k // 3)] += 2.0  # what the face 'does' shows in the pixels
        items.append({"frames": img, "parsing_maps": img.flip(-1), "landmark_maps": img.flip(-2),
                      "description_tokens": tokens[k], "label": label, "clip_id": f"{i:05d}"})
    return items


def tiny():
    return random_clip(clip_config(vision_width=64, vision_layers=1, patch_size=16, image_size=S, text_width=64,
                                   text_layers=1, embed_dim=32), seed=0)


def test_pretraining_learns_the_pairs_and_never_reads_a_label():
    labels = [i % 7 for i in range(16)]
    identities = [f"face{i // 4}" for i in range(16)]
    a, b = tiny(), tiny()
    ra = pretrain_clip(a, toy_items(labels), identities, epochs=12, lr=3e-3, identities_per_batch=2, seed=1)
    rb = pretrain_clip(b, toy_items(list(reversed(labels))), identities, epochs=12, lr=3e-3, identities_per_batch=2,
                       seed=1)
    assert ra.losses[-1] < 0.7 * ra.losses[0]  # it learns to match pictures and descriptions
    assert ra.losses == rb.losses  # other labels, the very same training
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), n
    assert (ra.clips, ra.identities, ra.epochs) == (16, 4, 12) and not a.training
    with pytest.raises(ValueError, match="3 identities for 16 clips"):
        pretrain_clip(tiny(), toy_items(labels), identities[:3], epochs=1)
