"""Checkpoint directories: round trip, backbone identity, variant and file errors."""
import json

import pytest
import torch

from finecliper.clip.testing import save_tiny_clip
from finecliper.model.factory import CheckpointError
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.shapes import clip_config, random_clip

CLASSES = ["happiness", "sadness", "neutral"]


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbones")
    cfg = clip_config(vision_width=64, vision_layers=2, text_width=64, text_layers=2, image_size=32, embed_dim=32)
    clip = save_tiny_clip(random_clip(cfg, seed=0), root / "clip.pt", "openai")
    other = save_tiny_clip(random_clip(cfg, seed=1), root / "other.pt", "openai")
    long_cfg = clip_config(vision_width=64, vision_layers=1, text_width=64, text_layers=2, image_size=32, embed_dim=32)
    longclip = save_tiny_clip(random_clip(long_cfg, seed=2), root / "longclip.pt", "longclip")
    other_long = save_tiny_clip(random_clip(long_cfg, seed=3), root / "other-longclip.pt", "longclip")
    return clip, other, longclip, other_long


def batch(model, b=2, t=4):
    g = torch.Generator().manual_seed(0)
    out = {"frames": torch.randn(b, t, 3, 32, 32, generator=g), "label": torch.tensor([0, 2])}
    if "parsing" in model.modalities:
        out["parsing_maps"] = torch.randn(b, t, 3, 32, 32, generator=g)
        out["landmark_maps"] = torch.randn(b, t, 3, 32, 32, generator=g)
    if "description" in model.modalities:
        out["description_tokens"] = model.tokenize_description(["the brows rise", "the lips press together"], 248)
    return out


@pytest.mark.parametrize("variant", ["base", "star", "dagger", "star_dagger"])
def test_round_trip_gives_identical_outputs(backbones, tmp_path, variant):
    clip, _, longclip, _ = backbones
    cfg = ModelConfig(variant=variant, clip=str(clip), longclip=str(longclip), classes=CLASSES, num_frames=4)
    model = FineCLIPER.from_config(cfg)
    torch.manual_seed(1)
    with torch.no_grad():  # make the tunable weights non-trivial
        for p in model.trainable_parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        ref = model(batch(model))
    model.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["backbones.json", "config.yaml", "model.safetensors"]
    loaded = FineCLIPER.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        out = loaded(batch(loaded))
    assert torch.equal(out.logits, ref.logits)
    assert torch.allclose(out.loss, ref.loss)
    assert loaded.cfg == model.cfg
    n_saved = sum(t.numel() for t in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(tmp_path / "ckpt" / "model.safetensors")).values())
    assert n_saved == model.parameter_counts()["total"]["trainable"]  # only the tunable weights travel


def test_refuses_a_different_backbone(backbones, tmp_path):
    clip, other, _, _ = backbones
    FineCLIPER.from_config(ModelConfig(clip=str(clip), classes=CLASSES, num_frames=4)).save_pretrained(tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match=r"trained on the clip backbone clip\.pt .*other\.pt"):
        FineCLIPER.from_pretrained(tmp_path / "ckpt", clip=other)
    rec = json.loads((tmp_path / "ckpt" / "backbones.json").read_text())
    assert rec["clip"]["format"] == "openai" and len(rec["clip"]["sha256"]) == 64


@pytest.mark.parametrize("variant", ["dagger", "star_dagger"])
def test_refuses_a_different_longclip(backbones, tmp_path, variant):
    clip, _, longclip, other_long = backbones
    cfg = ModelConfig(variant=variant, clip=str(clip), longclip=str(longclip), classes=CLASSES, num_frames=4)
    FineCLIPER.from_config(cfg).save_pretrained(tmp_path / "ckpt")
    rec = json.loads((tmp_path / "ckpt" / "backbones.json").read_text())
    assert set(rec) == {"clip", "longclip"} and rec["longclip"]["format"] == "longclip"
    with pytest.raises(CheckpointError, match=r"trained on the longclip backbone longclip\.pt .*other-longclip\.pt"):
        FineCLIPER.from_pretrained(tmp_path / "ckpt", longclip=other_long)
    assert FineCLIPER.from_pretrained(tmp_path / "ckpt", longclip=longclip).cfg == cfg  # the same file passes


def test_a_model_without_backbone_identities_cannot_be_saved(backbones, tmp_path):
    from finecliper.clip import load
    from finecliper.clip.tokenizer import load_tokenizer

    clip, _, _, _ = backbones
    bare = FineCLIPER(ModelConfig(classes=CLASSES, num_frames=4), load(clip).model, tokenizer=load_tokenizer())
    with pytest.raises(CheckpointError, match="does not know which clip checkpoint"):
        bare.save_pretrained(tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize("record", ["{}", '{"clip": {"sha256": ""}}'])
def test_a_checkpoint_that_records_no_backbone_is_refused(backbones, tmp_path, record):
    clip, _, _, _ = backbones
    d = FineCLIPER.from_config(ModelConfig(clip=str(clip), classes=CLASSES, num_frames=4)).save_pretrained(tmp_path / "c")
    (d / "backbones.json").write_text(record)
    with pytest.raises(CheckpointError, match="records no clip backbone"):
        FineCLIPER.from_pretrained(d)


def test_checkpoint_files_are_shared_with_the_team(backbones, tmp_path):
    """Files 0644 and the folder 0755 under the usual 022 umask (a bare mkdtemp would give 0700)."""
    import os
    import stat

    clip, _, _, _ = backbones
    old = os.umask(0o022)
    try:
        d = FineCLIPER.from_config(ModelConfig(clip=str(clip), classes=CLASSES, num_frames=4)).save_pretrained(tmp_path / "c")
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in d.iterdir()} == {0o644}


def test_refuses_weights_of_another_variant(backbones, tmp_path):
    clip, _, longclip, _ = backbones
    FineCLIPER.from_config(ModelConfig(variant="star", clip=str(clip), classes=CLASSES, num_frames=4)).save_pretrained(tmp_path / "star")
    (tmp_path / "base").mkdir()
    FineCLIPER.from_config(ModelConfig(variant="base", clip=str(clip), classes=CLASSES, num_frames=4)).save_pretrained(tmp_path / "base")
    # a base config next to star weights: the weights do not fit
    (tmp_path / "base" / "model.safetensors").write_bytes((tmp_path / "star" / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match=r"do not fit a 'base' model .*another variant"):
        FineCLIPER.from_pretrained(tmp_path / "base")


def test_truncated_weights_and_missing_config_name_the_file(backbones, tmp_path):
    clip, _, _, _ = backbones
    d = FineCLIPER.from_config(ModelConfig(clip=str(clip), classes=CLASSES, num_frames=4)).save_pretrained(tmp_path / "ckpt")
    w = d / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors: unreadable safetensors"):
        FineCLIPER.from_pretrained(d)
    with pytest.raises(CheckpointError, match="not a finecliper checkpoint"):
        FineCLIPER.from_pretrained(tmp_path)


def test_save_is_atomic_and_replaces_previous(backbones, tmp_path):
    clip, _, _, _ = backbones
    model = FineCLIPER.from_config(ModelConfig(clip=str(clip), classes=CLASSES, num_frames=4))
    d = model.save_pretrained(tmp_path / "ckpt")
    with torch.no_grad():
        model.video_encoder.temporal_embedding.fill_(0.5)
    model.save_pretrained(d)
    assert torch.all(FineCLIPER.from_pretrained(d).video_encoder.temporal_embedding == 0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp or .old folders left


def test_eval_mode_computes_class_prompts_once(backbones):
    clip, _, _, _ = backbones
    model = FineCLIPER.from_config(ModelConfig(clip=str(clip), classes=CLASSES, num_frames=4)).eval()
    calls = []
    hook = model.prompt_encoder.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        model(batch(model))
        model(batch(model))
    assert len(calls) == 2  # positive + negative sets, once for both batches
    model.train()
    model(batch(model))
    assert len(calls) == 4  # training recomputes them every step (adapters change)
    hook.remove()


def test_eager_and_sdpa_attention_give_the_same_model(backbones):
    clip, _, _, _ = backbones
    outs = []
    for impl in ("sdpa", "eager"):
        model = FineCLIPER.from_config(ModelConfig(clip=str(clip), classes=CLASSES, num_frames=4, attention=impl)).eval()
        assert model.clip.vision_model.encoder.layers[0].self_attn.config._attn_implementation == impl
        with torch.no_grad():
            outs.append(model(batch(model)).logits)
    assert torch.allclose(outs[0], outs[1], atol=1e-4)
