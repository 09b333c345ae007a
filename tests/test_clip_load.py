"""finecliper.clip.load: every on-disk format -> the same CLIPModel; strict, safe, clear errors."""
import copy
import json
import logging
import random

import pytest
import torch

from finecliper.clip import CheckpointError, ClipBackbone, load
from finecliper.clip.convert import hf_to_openai, longclip_effective_pe, stretch_positional_embedding
from finecliper.clip.testing import OpenAIReferenceCLIP, random_tiny_clip, save_tiny_clip
from finecliper.io import sha256_file

TOL = 1e-5


def features(model, images, tokens):
    with torch.no_grad():
        return (model.get_image_features(pixel_values=images).pooler_output,
                model.get_text_features(input_ids=tokens).pooler_output)


def encode(backbone: ClipBackbone, images, tokens):
    with torch.no_grad():
        return backbone.encode_image(images), backbone.encode_text(tokens)


def fp16_rounded(model):
    m = copy.deepcopy(model)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(p.half().float())
    return m


@pytest.fixture(scope="module")
def tiny():
    return random_tiny_clip(seed=0)


@pytest.fixture(scope="module")
def inputs(tiny):
    from finecliper.clip import load_tokenizer

    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tokens = load_tokenizer()(["a photo of a happy face", "the brows are lowered and drawn together, " * 12])
    return images, tokens


@pytest.fixture(scope="module")
def expected(tiny, inputs):
    return {"fp32": features(tiny, *inputs), "fp16": features(fp16_rounded(tiny), *inputs)}


FORMATS = [  # (fmt, file name, save kwargs, weights precision)
    ("hf", "hf_dir", {}, "fp32"),
    ("openai", "ViT-tiny.pt", {}, "fp16"),
    ("openai-jit", "ViT-tiny-jit.pt", {}, "fp16"),
    ("open_clip", "oc/open_clip_model.safetensors", {}, "fp32"),
    ("open_clip", "ocw/epoch_1.pt", {"wrap": True}, "fp32"),
    ("open_clip-custom-text", "ct/open_clip_pytorch_model.bin", {}, "fp32"),
]


@pytest.mark.parametrize("fmt,name,kw,precision", FORMATS, ids=[f"{f[0]}:{f[1]}" for f in FORMATS])
def test_every_format_loads_to_the_same_features(tiny, inputs, expected, tmp_path, fmt, name, kw, precision):
    path = save_tiny_clip(tiny, tmp_path / name, fmt, **kw)
    b = load(path, allow_pickle=(fmt == "openai-jit"))
    assert b.format == fmt and b.source == path
    assert (b.context_length, b.image_size, b.embed_dim) == (77, 32, 32)
    assert b.model.config._attn_implementation == "sdpa"
    assert all(p.dtype == torch.float32 for p in b.model.parameters())
    img, txt = encode(b, *inputs)
    want_img, want_txt = expected[precision]
    assert img.shape == (2, 32) and txt.shape == (2, 32)
    assert (img - want_img).abs().max() <= TOL
    assert (txt - want_txt).abs().max() <= TOL
    if precision == "fp16":  # really fp16 on disk: the fp32 model's features are not reproduced
        assert (img - expected["fp32"][0]).abs().max() > TOL
    if path.is_file():
        assert b.identity == sha256_file(path)


def test_loaded_backbone_equals_independent_openai_forward(tiny, inputs, tmp_path):
    """The file's own OpenAI-layout tensors run through OpenAI's architecture give the loader's features."""
    path = save_tiny_clip(tiny, tmp_path / "oc.bin", "open_clip")
    sd = torch.load(path, weights_only=True)
    ref = OpenAIReferenceCLIP(sd, quick_gelu=True).eval()
    b = load(path)
    img, txt = encode(b, *inputs)
    with torch.no_grad():
        assert (ref.encode_image(inputs[0]) - img).abs().max() <= TOL
        assert (ref.encode_text(inputs[1]) - txt).abs().max() <= TOL


def test_hf_directory_identity_and_tokenizer(tiny, inputs, tmp_path):
    path = save_tiny_clip(tiny, tmp_path / "hf", "hf")
    b = load(path)
    assert len(b.identity) == 64 and b.identity == load(path).identity
    (path / "model.safetensors").write_bytes((path / "model.safetensors").read_bytes())  # same bytes
    assert load(path).identity == b.identity
    assert torch.equal(b.tokenize(["a photo of a happy face"]), inputs[1][:1])
    b.tokenizer.hf.save_pretrained(path)  # tokenizer files in the directory are used
    assert load(path).tokenizer.source == path


def test_dtype_and_overrides(tiny, inputs, tmp_path):
    path = save_tiny_clip(tiny, tmp_path / "a.pt", "openai")
    b64 = load(path, dtype=torch.float64)
    assert b64.model.text_projection.weight.dtype == torch.float64
    assert b64.encode_image(inputs[0].double()).dtype == torch.float64
    one_head = load(path, config_overrides={"text_config": {"num_attention_heads": 1}})
    assert one_head.model.config.text_config.num_attention_heads == 1
    img, txt = encode(one_head, *inputs)
    base_img, base_txt = encode(load(path), *inputs)
    assert torch.equal(img, base_img) and (txt - base_txt).abs().max() > 1e-3


def test_open_clip_activation_from_sibling_config(tiny, inputs, expected, tmp_path, caplog):
    path = save_tiny_clip(tiny, tmp_path / "open_clip_model.safetensors", "open_clip")
    cfg_path = tmp_path / "open_clip_config.json"
    assert json.loads(cfg_path.read_text())["model_cfg"]["quick_gelu"] is True
    quick = encode(load(path), *inputs)
    assert (quick[0] - expected["fp32"][0]).abs().max() <= TOL

    cfg = json.loads(cfg_path.read_text())
    cfg["model_cfg"]["quick_gelu"] = False
    cfg_path.write_text(json.dumps(cfg))
    b = load(path)
    assert b.model.config.vision_config.hidden_act == "gelu"
    gelu = encode(b, *inputs)
    assert (gelu[0] - quick[0]).abs().max() > 1e-3 and (gelu[1] - quick[1]).abs().max() > 1e-3
    ref = features(_with_weights(tiny, "gelu"), *inputs)  # same weights, exact-GELU config
    assert (gelu[0] - ref[0]).abs().max() <= TOL and (gelu[1] - ref[1]).abs().max() <= TOL

    cfg_path.unlink()  # no sibling config: open_clip's default GELU, with a warning
    with caplog.at_level(logging.WARNING, logger="finecliper.clip.load"):
        default = encode(load(path), *inputs)
    assert "quick_gelu=True" in caplog.text and str(path) in caplog.text
    assert torch.equal(default[0], gelu[0]) and torch.equal(default[1], gelu[1])
    told = encode(load(path, quick_gelu=True), *inputs)
    assert (told[0] - quick[0]).abs().max() <= TOL and (told[1] - quick[1]).abs().max() <= TOL


def _with_weights(model, act):
    """``model``'s weights in a model whose activation is ``act``."""
    from finecliper.clip.load import build_empty_model

    cfg = copy.deepcopy(model.config)
    cfg.vision_config.hidden_act = cfg.text_config.hidden_act = act
    m = build_empty_model(cfg)
    m.load_state_dict(model.state_dict())
    return m.eval()


def test_longclip_248_context_and_effective_pe(inputs, tmp_path):
    long_model = random_tiny_clip(seed=5, context_length=248)
    path = save_tiny_clip(long_model, tmp_path / "longclip-tiny.pt", "longclip")
    sd = torch.load(path, weights_only=True)
    pe, res = sd["positional_embedding"], sd["positional_embedding_res"]
    assert pe.shape == res.shape == (248, 128) and not torch.equal(pe[20:], res[20:])
    b = load(path)
    assert b.format == "longclip" and b.context_length == 248
    loaded_pe = b.model.text_model.embeddings.position_embedding.weight
    assert torch.equal(loaded_pe, longclip_effective_pe(pe, res))
    assert torch.equal(loaded_pe, torch.cat([pe[:20], res[20:]]))
    tokens = b.tokenize(["a photo of a happy face", "the mouth corners are pulled down " * 50])  # 302 tokens > 248
    assert tokens.shape == (2, 248) and tokens[1, -1] == 49407
    img, txt = encode(b, inputs[0], tokens)
    want_img, want_txt = features(long_model, inputs[0], tokens)
    assert (img - want_img).abs().max() <= TOL and (txt - want_txt).abs().max() <= TOL
    ref = OpenAIReferenceCLIP(sd).eval()  # Long-CLIP's own two-PE forward on the file's tensors
    with torch.no_grad():
        assert (ref.encode_text(tokens) - txt).abs().max() <= TOL


def test_longclip_from_77_position_model_is_stretched(tiny, tmp_path):
    path = save_tiny_clip(tiny, tmp_path / "lc.pt", "longclip")
    b = load(path)
    pe77 = tiny.text_model.embeddings.position_embedding.weight
    got = b.model.text_model.embeddings.position_embedding.weight
    assert got.shape == (248, 128)
    assert torch.equal(got, stretch_positional_embedding(pe77))
    assert torch.equal(got[20 + 4 * 7], pe77[27]) and torch.equal(got[244], pe77[76])


# ------------------------------------------------------------------------------------------ bad files
def _openai_sd(tiny):
    return {k: v.clone() for k, v in hf_to_openai(tiny.state_dict()).items()}


def test_truncated_files(tiny, tmp_path):
    for fmt, name in (("open_clip", "t.safetensors"), ("open_clip", "t.bin"), ("openai", "t.pt")):
        path = save_tiny_clip(tiny, tmp_path / fmt / name, fmt, open_clip_config=False)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match=f"{path}: not a readable .*download it again"):
            load(path)


def test_not_a_checkpoint_at_all(tmp_path):
    rnd = tmp_path / "random.pt"
    for seed in range(60):  # garbage makes torch.load raise many exception types; each must be named
        rnd.write_bytes(random.Random(seed).randbytes(4096))
        with pytest.raises(CheckpointError, match=f"{rnd}: not a (readable )?PyTorch checkpoint"):
            load(rnd)
    js = tmp_path / "config.safetensors"
    js.write_text(json.dumps({"model_type": "clip"}))
    with pytest.raises(CheckpointError, match=f"{js}: not a readable safetensors file"):
        load(js)
    js_pt = tmp_path / "weights.bin"
    js_pt.write_text(json.dumps({"a": 1}))
    with pytest.raises(CheckpointError, match=f"{js_pt}: not a PyTorch checkpoint"):
        load(js_pt)
    other = tmp_path / "resnet.pt"
    torch.save({"conv.weight": torch.zeros(2, 2), "fc.bias": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match=f"{other}: not a CLIP checkpoint.*conv.weight"):
        load(other)
    with pytest.raises(CheckpointError, match="checkpoint not found: .*missing.pt"):
        load(tmp_path / "missing.pt")
    (tmp_path / "vis").mkdir()
    (tmp_path / "vis" / "config.json").write_text(json.dumps({"model_type": "clip_vision_model"}))
    with pytest.raises(CheckpointError, match="config.json: model_type is 'clip_vision_model'"):
        load(tmp_path / "vis")


def test_wrong_shapes_unknown_and_missing_keys(tiny, tmp_path):
    sd = _openai_sd(tiny)
    sd["transformer.resblocks.1.mlp.c_fc.weight"] = torch.zeros(100, 128)
    torch.save(sd, bad := tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match=rf"{bad}: .*wrong shapes \(1\): transformer.resblocks.1.mlp.c_fc.weight \(100, 128\) \(expected \(512, 128\)\)"):
        load(bad)

    sd = _openai_sd(tiny)
    sd["visual.transformer.resblocks.0.ls_1.gamma"] = torch.ones(128)
    sd["visual.attnpool.weight"] = torch.ones(3)
    torch.save(sd, bad := tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match=rf"{bad}: .*unexpected keys \(2\): visual.attnpool.weight, visual.transformer.resblocks.0.ls_1.gamma"):
        load(bad)

    sd = _openai_sd(tiny)
    del sd["ln_final.bias"], sd["visual.transformer.resblocks.1.attn.in_proj_bias"]
    torch.save(sd, bad := tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=rf"{bad}: .*missing keys \(2\): ln_final.bias, visual.transformer.resblocks.1.attn.in_proj_bias"):
        load(bad)

    sd = _openai_sd(tiny)
    del sd["visual.proj"]  # needed to infer the shapes
    torch.save(sd, bad := tmp_path / "noproj.pt")
    with pytest.raises(CheckpointError, match=f"{bad}: missing keys needed to infer the model shape: visual.proj"):
        load(bad)

    hf_dir = save_tiny_clip(tiny, tmp_path / "hf", "hf")  # strict for HF directories too
    from safetensors.torch import load_file, save_file

    hf_sd = load_file(hf_dir / "model.safetensors")
    hf_sd["text_model.extra.weight"] = torch.ones(2)
    del hf_sd["vision_model.post_layernorm.bias"]
    save_file(hf_sd, hf_dir / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"{hf_dir}: .*missing keys \(1\): vision_model.post_layernorm.bias.*unexpected keys \(1\): text_model.extra.weight"):
        load(hf_dir)


def test_torchscript_archive_needs_allow_pickle(tiny, tmp_path):
    path = save_tiny_clip(tiny, tmp_path / "ViT-tiny.pt", "openai-jit")
    with pytest.raises(CheckpointError, match=f"{path} is a TorchScript archive.*allow_pickle=True"):
        load(path)
    assert load(path, allow_pickle=True).format == "openai-jit"


class _Bomb:
    """Unpickling this runs code: it would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_pickle_bomb_is_refused_and_never_runs(tiny, tmp_path):
    marker = tmp_path / "PWNED"
    sd = _openai_sd(tiny)
    sd["logit_scale"] = _Bomb(marker)
    for name in ("bomb.pt", "bomb.bin"):
        path = tmp_path / name
        torch.save(sd, path)
        with pytest.raises(CheckpointError, match=f"{path} holds pickled Python objects.*exec.*allow_pickle=True"):
            load(path)
        assert not marker.exists()
    # the same file wrapped as a training checkpoint, and in the legacy (non-zip) torch.save format
    legacy = tmp_path / "legacy.pt"
    torch.save({"state_dict": sd}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=f"{legacy} holds pickled Python objects besides tensors \\(.*exec"):
        load(legacy)
    assert not marker.exists()


def test_open_clip_head_counts_from_sibling_config(tiny, inputs, tmp_path):
    path = save_tiny_clip(tiny, tmp_path / "m.safetensors", "open_clip")
    cfg_path = tmp_path / "open_clip_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["model_cfg"]["vision_cfg"]["head_width"] = 32  # 128 / 32 = 4 heads
    cfg["model_cfg"]["text_cfg"]["heads"] = 8
    cfg_path.write_text(json.dumps(cfg))
    b = load(path)
    assert b.model.config.vision_config.num_attention_heads == 4
    assert b.model.config.text_config.num_attention_heads == 8
    del cfg["model_cfg"]["text_cfg"]["heads"]  # open_clip's CLIPTextCfg default is 8 heads
    cfg_path.write_text(json.dumps(cfg))
    assert load(path).model.config.text_config.num_attention_heads == 8
    cfg_path.unlink()  # no config: OpenAI's width // 64
    assert load(path, quick_gelu=True).model.config.text_config.num_attention_heads == 2


def test_normalize_images_and_encode_input_checks(tiny, tmp_path):
    from finecliper.clip import CLIP_MEAN, CLIP_STD, normalize_images

    x = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert normalize_images(x).abs().max() < 1e-6  # the mean image maps to 0
    ones = normalize_images(torch.ones(3, 2, 2))
    assert torch.allclose(ones[:, 0, 0], (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD))
    assert abs(ones[0, 0, 0].item() - 1.9303361) < 1e-6  # (1 - 0.48145466) / 0.26862954
    b = load(save_tiny_clip(tiny, tmp_path / "a.pt", "openai"))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        b.encode_image(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="int64 tokens"):
        b.encode_text(torch.zeros(1, 77))
    with pytest.raises(ValueError, match="78 tokens exceed the text context length 77"):
        b.encode_text(torch.zeros(1, 78, dtype=torch.long))
