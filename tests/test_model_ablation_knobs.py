"""The knobs the paper's ablations need, each checked where it acts in forward (tiny random CLIPs).

modalities (Tab. 4/5), text_supervision and video_adapters (Tab. 6), fusion=fixed (appendix Fig. 8).
"""

import pytest
import torch
import torch.nn.functional as F

from finecliper.clip import ClipBackbone
from finecliper.clip.tokenizer import load_tokenizer
from finecliper.config import ConfigError
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.pn import fixed_fusion_weights, fusion_weights
from finecliper.model.video_encoder import FrameEncoder
from synthetic import tiny_backbone  # tests/synthetic.py

T, S = 4, 32
CLASSES = ["happiness", "sadness", "anger"]


def backbone(seed: int, context: int = 77) -> ClipBackbone:
    return tiny_backbone(seed, S, context)


def build(**kw) -> FineCLIPER:
    cfg = ModelConfig(**{"classes": CLASSES, "num_frames": T, "drop_path": 0.0, **kw})
    torch.manual_seed(0)
    model = FineCLIPER.from_config(cfg, backbone(0), backbone(1, 248) if cfg.needs_longclip() else None)
    with torch.no_grad():  # adapters away from their zero init, so that every trainable tensor matters
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model.eval()


def batch(b: int = 2, seed: int = 7, **replace) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {"frames": torch.randn(b, T, 3, S, S, generator=g), "parsing_maps": torch.randn(b, T, 3, S, S, generator=g),
           "landmark_maps": torch.randn(b, T, 3, S, S, generator=g), "face_valid": torch.ones(b, T, dtype=torch.bool),
           "description_tokens": load_tokenizer()(["the brows rise", "the lips press"][:b], context_length=248),
           "label": torch.tensor([0, 2][:b])}
    return {**out, **replace}


def trainable(model: FineCLIPER) -> dict[str, int]:
    return {k: v["trainable"] for k, v in model.parameter_counts().items() if k != "total" and v["trainable"]}


# ----------------------------------------------------------------------------- fusion=fixed

def test_fixed_fusion_gives_exactly_w_v_to_video_and_splits_the_rest_evenly():
    available = torch.tensor([[True, True, True, True], [True, False, False, True], [True, False, False, False]])
    w = fixed_fusion_weights(available, index=0, weight=0.3)
    assert torch.allclose(w, torch.tensor([[0.3, 0.7 / 3, 0.7 / 3, 0.7 / 3],   # all four
                                           [0.3, 0.0, 0.0, 0.7],                # no face: the maps get nothing
                                           [1.0, 0.0, 0.0, 0.0]]))              # the video alone takes it all
    scores = torch.randn(4, 3, 5)  # (M, B, K): scores do not matter to fixed weights
    assert torch.equal(fusion_weights(scores, available.t(), "fixed", fixed_index=0, fixed_weight=0.3), w)


@pytest.mark.parametrize("w_v", [0.1, 0.5, 0.9])
def test_the_model_fuses_and_weights_the_loss_with_the_fixed_weights(w_v):
    model = build(variant="star_dagger", fusion="fixed", fusion_video_weight=w_v)
    b = batch(face_valid=torch.tensor([[True] * T, [False] * T]))  # clip 2 has no face: no maps
    with torch.no_grad():
        out = model(b)
    rest = (1 - w_v) / 3
    assert torch.allclose(out.weights, torch.tensor([[w_v, rest, rest, rest], [w_v, 0, 0, 1 - w_v]]), atol=1e-6)
    feats, _ = model.encode(b)
    fused = F.normalize(sum(out.weights[:, i:i + 1] * feats[m] for i, m in enumerate(out.modalities)), dim=-1)
    assert torch.allclose(out.features, fused, atol=1e-5)  # Eq. 10 with the fixed weights
    ce = torch.stack([F.cross_entropy(out.scores[m] / model.cfg.tau, b["label"], reduction="none") for m in out.modalities])
    assert torch.allclose(out.loss, (ce * out.weights.t()).sum(0).mean(), atol=1e-5)  # Eq. 11 likewise


def test_fixed_fusion_needs_the_video_and_a_weight_in_0_1():
    with pytest.raises(ConfigError, match="fusion=fixed .* needs the video"):
        ModelConfig(variant="star", fusion="fixed", modalities=["parsing", "landmarks"])
    with pytest.raises(ConfigError, match="fusion_video_weight must be in"):
        ModelConfig(fusion="fixed", fusion_video_weight=1.5)


# ----------------------------------------------------------------------------- text supervision (Tab. 6)

def test_positive_only_has_one_adapter_set_and_scores_cos_to_the_positive_prompts():
    model = build(text_supervision="pos")
    assert len(model.prompt_encoder.adapter_sets) == 1
    assert trainable(model)["prompt_encoder"] == trainable(build())["prompt_encoder"] // 2
    b = batch()
    with torch.no_grad():
        out = model(b)
        tp, tn = model.class_text_features()
        feats, _ = model.encode(b)
    assert tn is None
    assert torch.allclose(out.scores["video"], feats["video"] @ tp.t(), atol=1e-6)
    # the negative prompts are never read
    with torch.no_grad():
        other = build(text_supervision="pos", neg_template="nothing to do with {}")(b)
    assert torch.allclose(out.logits, other.logits)


def test_no_text_supervision_scores_by_a_cosine_class_head_and_has_no_prompt_encoder():
    model = build(text_supervision="none")
    assert not hasattr(model, "prompt_encoder")
    assert trainable(model)["class_head"] == len(CLASSES) * model.clip.text_projection.out_features
    b = batch()
    with torch.no_grad():
        out = model(b)
        feats, _ = model.encode(b)
    head = F.normalize(model.class_head.weight, dim=-1)
    assert torch.allclose(out.scores["video"], feats["video"] @ head.t(), atol=1e-6)
    with torch.no_grad():  # the prompts are never read
        other = build(text_supervision="none", pos_template="x {}", neg_template="y {}")(b)
    assert torch.allclose(out.logits, other.logits)
    with pytest.raises(ValueError, match="without text supervision.*cannot score 4 other classes"):
        model.set_classes(["a", "b", "c", "d"])


def test_text_supervision_is_validated():
    with pytest.raises(ConfigError, match="text_supervision must be one of pos_neg, pos, none"):
        ModelConfig(text_supervision="neg")
    with pytest.raises(ConfigError, match="zero_shot"):
        ModelConfig(zero_shot=True, text_supervision="none")


# ----------------------------------------------------------------------------- video adapters (Tab. 6)

def test_without_video_adapters_the_frames_get_frozen_frame_wise_clip_features():
    model = build(video_adapters=False)
    assert isinstance(model.video_encoder, FrameEncoder)
    assert "video_encoder" not in trainable(model)  # no adapter, no temporal embedding, no ln_post copy
    b = batch()
    with torch.no_grad():
        feats, _ = model.encode(b)
        clip = model.clip
        per_frame = clip.visual_projection(clip.vision_model(pixel_values=b["frames"].flatten(0, 1)).pooler_output)
    expected = F.normalize(per_frame.view(2, T, -1).mean(1), dim=-1)  # CLIP's own image features, averaged over frames
    assert torch.allclose(feats["video"], expected, atol=1e-5)


def test_map_encoder_cannot_share_adapters_that_do_not_exist():
    with pytest.raises(ConfigError, match="map_encoder_shares_video_adapters needs"):
        ModelConfig(variant="star", video_adapters=False, map_encoder_shares_video_adapters=True)


# ----------------------------------------------------------------------------- modalities (Tab. 4/5)

def test_middle_level_only_builds_no_frame_encoder_and_reads_no_frames():
    model = build(variant="star", modalities=["landmarks", "parsing"])
    assert model.modalities == ("parsing", "landmarks")  # in the fixed fusion order
    assert not hasattr(model, "video_encoder") and hasattr(model, "map_encoder")
    b = batch()
    with torch.no_grad():
        out = model(b)
        again = model(batch(frames=torch.randn(2, T, 3, S, S)))
    assert set(out.scores) == {"parsing", "landmarks"} and torch.allclose(out.logits, again.logits)


def test_parsing_only_reads_the_parsing_maps_and_not_the_landmark_maps():
    model = build(variant="star", modalities=["video", "parsing"])
    assert hasattr(model, "parsing_projection") and not hasattr(model, "landmarks_projection")
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        out = model(batch())
        new_landmarks = model(batch(landmark_maps=torch.randn(2, T, 3, S, S, generator=g)))
        new_parsing = model(batch(parsing_maps=torch.randn(2, T, 3, S, S, generator=g)))
    assert out.modalities == ("video", "parsing")
    assert torch.allclose(out.logits, new_landmarks.logits)
    assert not torch.allclose(out.logits, new_parsing.logits, atol=1e-5)


def test_landmarks_only_and_description_only():
    lm = build(variant="star", modalities=["video", "landmarks"])
    assert lm.modalities == ("video", "landmarks") and hasattr(lm, "landmarks_projection")
    assert not hasattr(lm, "parsing_projection")
    high = build(variant="dagger", modalities=["description"])
    assert high.modalities == ("description",) and not hasattr(high, "video_encoder")
    with torch.no_grad():
        a = high(batch())
        b = high(batch(description_tokens=load_tokenizer()(["the jaw drops", "the eyes close"], context_length=248)))
    assert not torch.allclose(a.logits, b.logits, atol=1e-5)


@pytest.mark.parametrize("mods", [[], ["video", "video"], ["audio"]])
def test_modalities_are_validated(mods):
    with pytest.raises(ConfigError, match="model.modalities must be a non-empty list of distinct modalities"):
        ModelConfig(modalities=mods)


def test_modalities_from_the_command_line_and_the_inputs_they_need():
    from finecliper.config import load_config

    cfg = load_config(ModelConfig, None, ["variant=base", "modalities=[landmarks,description]"])
    assert cfg.fused_modalities() == ("landmarks", "description") and cfg.needs_maps() and cfg.needs_longclip()
    assert not ModelConfig(variant="star", modalities=["video"]).needs_maps()
