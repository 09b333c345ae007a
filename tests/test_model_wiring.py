"""Every knob and every step of the forward pass is wired: each test here fails if one line is broken.

Each test names the one-line bug it catches (the mutations found surviving an earlier version).
"""
import dataclasses
import zlib

import pytest
import torch

from finecliper.clip import ClipBackbone
from finecliper.clip.testing import random_tiny_clip
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.pn import pn_scores
from finecliper.model.video_encoder import AdaptedBlock, VideoEncoder
from synthetic import tiny_backbone  # tests/synthetic.py

T, S = 4, 32
CLASSES = ["happiness", "sadness", "anger"]


def backbone(seed: int, context: int = 77) -> ClipBackbone:
    return tiny_backbone(seed, S, context)


def randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Every tunable tensor set from its own name: equal names and shapes get equal values in any model."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
                base = 1.0 if name.endswith("ln_post.weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
    return model


def build(**cfg) -> FineCLIPER:
    cfg = ModelConfig(**{"classes": CLASSES, "num_frames": T, "drop_path": 0.0, **cfg})
    longclip = backbone(1, 248) if cfg.needs_longclip() else None
    torch.manual_seed(0)
    return randomise(FineCLIPER.from_config(cfg, backbone(0), longclip))


def make_batch(model: FineCLIPER, b: int = 2, frames: int = T) -> dict:
    g = torch.Generator().manual_seed(7)
    return {"frames": torch.randn(b, frames, 3, S, S, generator=g),
            "parsing_maps": torch.randn(b, frames, 3, S, S, generator=g),
            "landmark_maps": torch.randn(b, frames, 3, S, S, generator=g),
            "face_valid": torch.ones(b, frames, dtype=torch.bool),
            "description_tokens": model.tokenize_description(["the brows rise", "the lips press together"][:b]),
            "label": torch.tensor([0, 2][:b])}


def run(model: FineCLIPER, train: bool = False):
    model.train(train)
    torch.manual_seed(3)  # the same drop-path draws for models that draw the same
    with torch.no_grad():
        return model(make_batch(model))


# ----------------------------------------------------------------------------- every ModelConfig knob

# knob -> (base config, changed value): the base makes the knob matter (e.g. fusion needs two modalities)
CHANGES_FORWARD = {
    "variant": ({}, "star"),
    "classes": ({}, ["happiness", "sadness", "fear"]),
    "pos_template": ({}, "A face that shows {}."),
    "neg_template": ({}, "A face that shows no {}."),
    "pn_lambda": ({}, 0.5),
    "tau": ({}, 0.05),
    "num_frames": ({}, 2),
    "adapter_ratio": ({}, 0.5),
    "adapter_scale": ({}, 1.0),
    "drop_path": ({}, 0.5),  # in training mode
    "share_pn_adapters": ({}, True),
    "map_encoder_shares_video_adapters": ({"variant": "star"}, True),
    "fusion": ({"variant": "star"}, "softmax"),
    "fusion_tau": ({"variant": "star", "fusion": "softmax"}, 0.1),
    "fusion_floor": ({"variant": "star"}, 0.2),
    "fused_ce_weight": ({}, 1.0),  # the loss, not the logits
    "zero_shot": ({}, True),
    "modalities": ({"variant": "star"}, ["video", "parsing"]),
    "text_supervision": ({}, "pos"),
    "video_adapters": ({}, False),
    "fusion_video_weight": ({"variant": "star", "fusion": "fixed"}, 0.8),
}
# knob -> why it does not change forward (and where it is tested instead)
NOT_FORWARD = {
    "clip": "where the frozen CLIP comes from; its sha256 is checked instead (test_model_checkpoint)",
    "longclip": "where the frozen Long-CLIP comes from; its sha256 is checked instead (test_model_checkpoint)",
    "allow_pickle": "whether loading a backbone may run pickled code",
    "attention": "sdpa and eager compute the same attention (test_eager_and_sdpa_attention_give_the_same_model)",
    "grad_checkpoint": "recomputes activations in backward; same outputs (test_grad_checkpoint_changes_no_number)",
    "train_clip_projections": "which weights train, not what forward computes (test_train_clip_projections_unfreezes_them)",
    "desc_context_length": "the data pipeline's description length; forward cuts tokens after EOT "
                           "(test_desc_context_length_sets_the_description_tokens)",
}


def test_every_knob_is_classified():
    assert set(CHANGES_FORWARD) | set(NOT_FORWARD) == {f.name for f in dataclasses.fields(ModelConfig)}
    assert not set(CHANGES_FORWARD) & set(NOT_FORWARD)


@pytest.mark.parametrize("knob", sorted(CHANGES_FORWARD))
def test_knob_changes_forward(knob):
    base, value = CHANGES_FORWARD[knob]
    a, b = build(**base), build(**{**base, knob: value})
    assert getattr(b.cfg, knob) == value
    if knob == "num_frames":  # the model takes exactly that many frames, and they all count
        with pytest.raises(ValueError, match=f"expected {value} frames"):
            b(make_batch(b))
        with torch.no_grad():
            b.eval()(make_batch(b, frames=value))
        return
    train = knob == "drop_path"
    out_a, out_b = run(a, train), run(b, train)
    if knob == "fused_ce_weight":
        assert torch.allclose(out_a.logits, out_b.logits) and not torch.allclose(out_a.loss, out_b.loss)
        return
    assert out_a.logits.shape != out_b.logits.shape or not torch.allclose(out_a.logits, out_b.logits, atol=1e-5), knob


def test_train_clip_projections_unfreezes_them():
    names = {n for n, p in build(train_clip_projections=True).named_parameters() if p.requires_grad}
    assert {"clip.visual_projection.weight", "clip.text_projection.weight"} <= names
    assert not {n for n, p in build().named_parameters() if p.requires_grad and n.startswith("clip.")}


def test_desc_context_length_sets_the_description_tokens():
    assert build(variant="dagger", desc_context_length=64).tokenize_description(["the brows rise"]).shape == (1, 64)


def test_grad_checkpoint_changes_no_number():
    a, b = build(), build(grad_checkpoint=True)
    losses = []
    for m in (a, b):
        m.train()
        out = m(make_batch(m))
        out.loss.backward()
        losses.append((out.loss.detach(), m.video_encoder.blocks[0].T_Adapter.D_fc2.weight.grad.clone()))
    assert torch.allclose(losses[0][0], losses[1][0], atol=1e-6)
    assert torch.allclose(losses[0][1], losses[1][1], atol=1e-6)


# ----------------------------------------------------------------------------- the seven surviving bugs

def test_logits_are_fused_pn_scores_with_the_configured_lambda_over_tau():
    """Bug: ``cfg.pn_lambda`` not reaching forward (every score computed with lambda = 1)."""
    model = build(variant="star", pn_lambda=0.37, tau=0.02).eval()
    with torch.no_grad():
        out = model(make_batch(model))
        tp, tn = model.class_text_features()
    assert torch.allclose(out.logits, pn_scores(out.features, tp, tn, 0.37) / 0.02, atol=1e-4)
    for m in model.modalities:
        assert torch.allclose(out.scores[m], pn_scores(out.modality_features[m], tp, tn, 0.37), atol=1e-5)
    assert not torch.allclose(out.scores["video"], pn_scores(out.modality_features["video"], tp, tn, 1.0), atol=1e-3)


def encoder(seed=0) -> VideoEncoder:
    clip = random_tiny_clip(seed, vision_width=64, image_size=S)
    enc = VideoEncoder(clip.vision_model, num_frames=T, drop_path=0.0).eval()
    return randomise(enc)


def test_each_clip_of_a_batch_is_encoded_on_its_own():
    """Bug: frames grouped ``(t b)`` instead of ``(b t)`` in a temporal reshape (clips mix in a batch)."""
    enc = encoder()
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(1, T, 3, S, S, generator=g), torch.randn(1, T, 3, S, S, generator=g)
    with torch.no_grad():
        together = enc.forward_features(torch.cat([a, b]))
        alone = torch.cat([enc.forward_features(a), enc.forward_features(b)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_temporal_embedding_is_added_to_its_own_frame():
    """Bug: the temporal embedding not added (or added to the wrong frames)."""
    enc = encoder()
    for blk in enc.blocks:  # without a temporal adapter the frames are encoded independently, then averaged
        torch.nn.init.zeros_(blk.T_Adapter.D_fc2.weight)
        torch.nn.init.zeros_(blk.T_Adapter.D_fc2.bias)
    frames = torch.randn(2, T, 3, S, S, generator=torch.Generator().manual_seed(2))
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        ref = enc.forward_features(frames)
        shuffled = enc.forward_features(frames[:, perm])  # the frames move, their embeddings do not
        enc.temporal_embedding.copy_(enc.temporal_embedding[:, perm])
        both = enc.forward_features(frames[:, perm])  # frames and embeddings move together
        enc.temporal_embedding.zero_()
        none = enc.forward_features(frames)
    assert torch.allclose(both, ref, atol=1e-5)
    assert not torch.allclose(shuffled, ref, atol=1e-3)
    assert not torch.allclose(none, ref, atol=1e-3)


def test_mlp_adapter_branch_is_scaled_by_adapter_scale():
    """Bug: the MLP-parallel adapter's scale ``s`` ignored."""
    layer = random_tiny_clip(0, vision_width=64, image_size=S).vision_model.encoder.layers[0]
    block = randomise(AdaptedBlock(64, 0.25, 0.0, 0.0)).eval()
    x = torch.randn(2 * T, 5, 64, generator=torch.Generator().manual_seed(4))
    outs = {}
    with torch.no_grad():
        for s in (0.0, 0.5, 1.0):
            block.scale = s
            outs[s] = block(layer, x, T)
    assert (outs[1.0] - outs[0.0]).abs().max() > 1e-3
    assert torch.allclose(outs[1.0] - outs[0.0], 2 * (outs[0.5] - outs[0.0]), atol=1e-5)


def test_maps_count_when_any_frame_has_a_face():
    """Bug: maps available only when *every* frame has a face (``any`` -> ``all``)."""
    model = build(variant="star").eval()
    batch = make_batch(model)
    batch["face_valid"] = torch.tensor([[True, False, False, False], [False] * T])
    with torch.no_grad():
        w = model(batch).weights  # (B, M), columns in model.modalities order
    cols = [model.modalities.index(m) for m in ("parsing", "landmarks")]
    assert (w[0, cols] > 0).all()  # one frame with a face: its maps count
    assert (w[1, cols] == 0).all()  # no face at all: no maps
    assert torch.allclose(w.sum(1), torch.ones(2))


def test_refinement_enters_the_cache_identity_only_when_on():
    """Bug: the refine flag recorded in the description-cache identity even when refinement is off."""
    from finecliper.text.describe import CaptionsBackend, cache_identity
    from finecliper.text.refine import refine_fingerprint

    assert cache_identity(CaptionsBackend(), "mafw", refine=False)["refine_hash"] is None
    assert cache_identity(CaptionsBackend(), "mafw", refine=True)["refine_hash"] == refine_fingerprint()


def test_refined_and_raw_caches_are_not_mixed(tmp_path):
    from finecliper.text.desc_cache import DescriptionCache, DescriptionCacheError
    from finecliper.text.describe import CaptionsBackend, cache_identity

    DescriptionCache(tmp_path / "raw.jsonl", cache_identity(CaptionsBackend(), "mafw", refine=False))
    DescriptionCache(tmp_path / "raw.jsonl", cache_identity(CaptionsBackend(), "mafw", refine=False))  # reopens
    with pytest.raises(DescriptionCacheError, match="refine_hash"):
        DescriptionCache(tmp_path / "raw.jsonl", cache_identity(CaptionsBackend(), "mafw", refine=True))
