"""Tunable parameter counts equal the analytic formula, per module, for every variant (ViT-B/16 shape)."""
import pytest
import torch
from transformers import CLIPModel

from finecliper.clip.tokenizer import load_tokenizer
from finecliper.model.adapters import Adapter, adapter_parameter_count
from finecliper.model.config import VARIANTS, ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.shapes import clip_config, random_clip


def vit_b16_on_meta(context=77) -> CLIPModel:
    return random_clip(clip_config(context_length=context), device="meta")


def test_one_768_adapter_has_295872_parameters():
    assert adapter_parameter_count(768) == 295_872
    assert sum(p.numel() for p in Adapter(768).parameters()) == 295_872
    assert adapter_parameter_count(512) == 131_712


def expected_trainable(variant: str, share_pn=False, T=16) -> dict[str, int]:
    aim = 36 * 295_872 + T * 768 + 2 * 768  # adapters, temporal embedding, ln_post = 10,665,216 at T=16
    text = (1 if share_pn else 2) * 12 * 131_712
    out = {"video_encoder": aim, "prompt_encoder": text}
    if "parsing" in VARIANTS[variant]:
        out |= {"map_encoder": aim, "parsing_projection": 768 * 512, "landmarks_projection": 768 * 512}
    if "description" in VARIANTS[variant]:
        out |= {"description_encoder": 12 * 131_712, "description_projection": 512 * 512}
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_trainable_counts_match_formula(variant):
    clip = vit_b16_on_meta()
    longclip = vit_b16_on_meta(context=248) if "description" in VARIANTS[variant] else None
    model = FineCLIPER(ModelConfig(variant=variant, classes=list("abcdefg")), clip, longclip, tokenizer=load_tokenizer())
    counts = model.parameter_counts()
    expected = expected_trainable(variant)
    for name, n in expected.items():
        assert counts[name]["trainable"] == n, name
        assert counts[name]["frozen"] == 0, name
    assert counts["clip"] == {"trainable": 0, "frozen": 149_620_737}
    if longclip is not None:  # Long-CLIP text tower (248 positions) + its projection, frozen
        assert counts["longclip_text"]["trainable"] == 0
        assert counts["longclip_text"]["frozen"] == 63_428_096 + 171 * 512
    assert counts["total"]["trainable"] == sum(expected.values())
    assert sum(p.numel() for p in model.trainable_parameters()) == sum(expected.values())


def test_base_variant_totals_13_8m():
    clip = vit_b16_on_meta()
    kw = dict(classes=list("abcdefg"))
    model = FineCLIPER(ModelConfig(variant="base", **kw), clip, tokenizer=load_tokenizer())
    assert model.parameter_counts()["total"]["trainable"] == 13_826_304
    shared = FineCLIPER(ModelConfig(variant="base", share_pn_adapters=True, **kw), clip, tokenizer=load_tokenizer())
    assert shared.parameter_counts()["total"]["trainable"] == 12_245_760


def test_map_encoder_sharing_video_adapters_counts_them_once():
    clip = vit_b16_on_meta()
    cfg = ModelConfig(variant="star", map_encoder_shares_video_adapters=True, classes=list("abcdefg"))
    model = FineCLIPER(cfg, clip, tokenizer=load_tokenizer())
    counts = model.parameter_counts()
    assert counts["map_encoder"]["trainable"] == 16 * 768 + 2 * 768  # own temporal embedding and ln_post only
    assert model.map_encoder.blocks is model.video_encoder.blocks


def test_info_shows_the_modules_by_their_names(capsys):
    from finecliper.cli.main import main

    assert main(["info", "--variant", "star_dagger"]) == 0
    out = capsys.readouterr().out
    for name in ("video_encoder", "prompt_encoder", "map_encoder", "parsing_projection", "landmarks_projection",
                 "longclip_text", "description_encoder", "description_projection"):
        assert name in out, name
    assert "10,665,216" in out and "middle" not in out
