"""Key maps HF <-> OpenAI, shape inference, Long-CLIP positional embeddings (reference.md §2–3)."""
import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from finecliper.clip.convert import (
    ConversionError,
    hf_to_openai,
    infer_clip_config,
    longclip_effective_pe,
    openai_to_hf,
    stretch_positional_embedding,
)
from finecliper.clip.testing import OpenAIReferenceCLIP, random_tiny_clip, tiny_clip_config


@pytest.fixture(scope="module")
def tiny():
    return random_tiny_clip(seed=0)


@pytest.fixture(scope="module")
def inputs():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(3, 3, 32, 32, generator=g)
    tokens = torch.zeros(3, 77, dtype=torch.long)
    tokens[0, :5] = torch.tensor([49406, 320, 1125, 539, 49407])
    tokens[1, :3] = torch.tensor([49406, 900, 49407])
    tokens[2, :77] = torch.randint(1, 49406, (77,), generator=g)
    tokens[2, 0], tokens[2, 76] = 49406, 49407
    return images, tokens


def test_round_trip_hf_openai_hf_is_exact(tiny):
    hf = tiny.state_dict()
    back = openai_to_hf(hf_to_openai(hf))
    assert set(back) == set(hf)
    for k, v in hf.items():
        assert torch.equal(back[k], v), k


def test_openai_key_count_and_fused_qkv(tiny):
    oa = hf_to_openai(tiny.state_dict())
    # vision: conv1, class, pos, ln_pre×2, ln_post×2, proj = 8; text: tok, pos, ln_final×2, proj = 5;
    # 12 tensors per block, 2 blocks per tower; logit_scale
    assert len(oa) == 8 + 5 + 12 * 2 * 2 + 1
    hf = tiny.state_dict()
    w = oa["visual.transformer.resblocks.1.attn.in_proj_weight"]  # rows q, k, v
    assert torch.equal(w[:128], hf["vision_model.encoder.layers.1.self_attn.q_proj.weight"])
    assert torch.equal(w[128:256], hf["vision_model.encoder.layers.1.self_attn.k_proj.weight"])
    assert torch.equal(w[256:], hf["vision_model.encoder.layers.1.self_attn.v_proj.weight"])
    b = oa["transformer.resblocks.0.attn.in_proj_bias"]
    assert torch.equal(b[256:], hf["text_model.encoder.layers.0.self_attn.v_proj.bias"])
    assert torch.equal(oa["visual.proj"], hf["visual_projection.weight"].t())
    assert torch.equal(oa["text_projection"], hf["text_projection.weight"].t())
    assert torch.equal(oa["visual.ln_pre.bias"], hf["vision_model.pre_layrnorm.bias"])


def test_vit_b16_openai_shapes_match_reference_table():
    """Converting a ViT-B/16 CLIPModel (on the meta device, no memory) gives §2.2's keys and shapes."""
    cfg = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                           patch_size=16, image_size=224),
        projection_dim=512,
    )
    with torch.device("meta"):
        model = CLIPModel(cfg)
    oa = hf_to_openai(model.state_dict())
    shapes = {k: tuple(v.shape) for k, v in oa.items()}
    assert len(shapes) == 8 + 12 * 12 + 5 + 12 * 12 + 1 == 302
    assert shapes["visual.conv1.weight"] == (768, 3, 16, 16)
    assert shapes["visual.positional_embedding"] == (197, 768)
    assert shapes["visual.transformer.resblocks.11.attn.in_proj_weight"] == (2304, 768)
    assert shapes["visual.transformer.resblocks.0.mlp.c_proj.weight"] == (768, 3072)
    assert shapes["visual.proj"] == (768, 512)
    assert shapes["token_embedding.weight"] == (49408, 512)
    assert shapes["positional_embedding"] == (77, 512)
    assert shapes["transformer.resblocks.0.attn.in_proj_weight"] == (1536, 512)
    assert shapes["transformer.resblocks.0.mlp.c_fc.weight"] == (2048, 512)
    assert shapes["text_projection"] == (512, 512)
    assert shapes["logit_scale"] == ()
    inferred = infer_clip_config(oa, quick_gelu=True)
    v, t = inferred.vision_config, inferred.text_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.patch_size, v.image_size) == (768, 12, 12, 16, 224)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.max_position_embeddings) == (512, 12, 8, 77)
    assert (v.intermediate_size, t.intermediate_size, t.vocab_size, inferred.projection_dim) == (3072, 2048, 49408, 512)
    assert v.hidden_act == t.hidden_act == "quick_gelu"


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_independent_openai_forward_equals_hf_clipmodel(quick_gelu, inputs):
    """OpenAI's architecture (nn.MultiheadAttention, seq-first) on the converted keys = CLIPModel's features."""
    model = random_tiny_clip(seed=1, quick_gelu=quick_gelu)
    ref = OpenAIReferenceCLIP(hf_to_openai(model.state_dict()), quick_gelu=quick_gelu).eval()
    images, tokens = inputs
    with torch.no_grad():
        hf_img = model.get_image_features(pixel_values=images).pooler_output
        hf_txt = model.get_text_features(input_ids=tokens).pooler_output
        assert hf_img.shape == (3, 32) and hf_txt.shape == (3, 32)
        assert torch.allclose(ref.encode_image(images), hf_img, atol=1e-5, rtol=0)
        assert torch.allclose(ref.encode_text(tokens), hf_txt, atol=1e-5, rtol=0)
    # the activation matters: the other one gives different features
    other = OpenAIReferenceCLIP(hf_to_openai(model.state_dict()), quick_gelu=not quick_gelu).eval()
    with torch.no_grad():
        assert (other.encode_image(images) - hf_img).abs().max() > 1e-3


def test_infer_config_of_tiny_model_equals_its_config(tiny):
    cfg = infer_clip_config(hf_to_openai(tiny.state_dict()), quick_gelu=True)
    want = tiny_clip_config()
    for a, b in ((cfg.vision_config, want.vision_config), (cfg.text_config, want.text_config)):
        for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act"):
            assert getattr(a, field) == getattr(b, field), field
    assert cfg.vision_config.image_size == 32 and cfg.vision_config.patch_size == 16
    over = infer_clip_config(hf_to_openai(tiny.state_dict()), quick_gelu=False,
                             overrides={"text_config": {"num_attention_heads": 4}})
    assert over.text_config.num_attention_heads == 4 and over.vision_config.num_attention_heads == 2
    assert over.text_config.hidden_act == "gelu"


def test_unknown_and_missing_keys_are_named(tiny):
    oa = hf_to_openai(tiny.state_dict())
    with pytest.raises(ConversionError, match="visual.transformer.resblocks.0.ls_1.gamma"):
        openai_to_hf({**oa, "visual.transformer.resblocks.0.ls_1.gamma": torch.ones(128)})
    del oa["visual.proj"]
    with pytest.raises(ConversionError, match="visual.proj"):
        infer_clip_config(oa, quick_gelu=True)
    hf = dict(tiny.state_dict())
    del hf["text_model.encoder.layers.1.self_attn.k_proj.bias"]
    with pytest.raises(ConversionError, match=r"layers\.1\.self_attn\.k_proj\.bias"):
        hf_to_openai(hf)


def _longclip_stretch_loop(pe: torch.Tensor) -> torch.Tensor:
    """Long-CLIP's load_from_clip loop (model/longclip.py), transcribed."""
    length, dim = pe.shape
    keep_len = 20
    new = torch.zeros([4 * length - 3 * keep_len, dim], dtype=pe.dtype)
    for i in range(keep_len):
        new[i] = pe[i]
    for i in range(length - 1 - keep_len):
        new[4 * i + keep_len] = pe[i + keep_len]
        new[4 * i + 1 + keep_len] = 3 * pe[i + keep_len] / 4 + 1 * pe[i + 1 + keep_len] / 4
        new[4 * i + 2 + keep_len] = 2 * pe[i + keep_len] / 4 + 2 * pe[i + 1 + keep_len] / 4
        new[4 * i + 3 + keep_len] = 1 * pe[i + keep_len] / 4 + 3 * pe[i + 1 + keep_len] / 4
    for m in range(4):
        new[4 * length - 3 * keep_len - 4 + m] = pe[length - 1] + m * (pe[length - 1] - pe[length - 2]) / 4
    return new


def test_stretch_positional_embedding_matches_longclip():
    pe = torch.randn(77, 16, generator=torch.Generator().manual_seed(3))
    new = stretch_positional_embedding(pe)
    assert new.shape == (248, 16)
    assert torch.allclose(new, _longclip_stretch_loop(pe), atol=1e-6, rtol=0)
    assert torch.equal(new[:20], pe[:20])
    for j in range(56):
        assert torch.equal(new[20 + 4 * j], pe[20 + j])
    assert torch.equal(new[244], pe[76])
    assert torch.allclose(new[22], (pe[20] + pe[21]) / 2)
    assert torch.allclose(new[247], pe[76] + 3 * (pe[76] - pe[75]) / 4)


def test_longclip_effective_pe_takes_rows_from_both():
    pe, res = torch.zeros(248, 4), torch.ones(248, 4)
    eff = longclip_effective_pe(pe, res)
    assert eff[:20].sum() == 0 and torch.equal(eff[20:], res[20:])
    with pytest.raises(ConversionError, match="differ in shape"):
        longclip_effective_pe(pe, torch.ones(77, 4))
