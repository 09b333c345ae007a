"""Portable checkpoints: a checkpoint moved to another folder and loaded from another working directory
finds its frozen backbones by their recorded sha256 and file name."""
import json
import os
import shutil

import pytest
import torch

from finecliper.clip.testing import random_tiny_clip, save_tiny_clip
from finecliper.model import factory
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER

CLASSES = ["happiness", "sadness", "neutral"]


def _logits(model):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return model.eval()({"frames": torch.randn(2, 4, 3, 32, 32, generator=g),
                             **({"description_tokens": model.tokenize_description(["the mouth opens"] * 2, 248)}
                                if "description" in model.modalities else {})}).logits


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """As `finecliper train` leaves it: run from a project folder with relative backbone paths."""
    project = tmp_path / "project"
    (project / "backbones").mkdir(parents=True)
    save_tiny_clip(random_tiny_clip(0, vision_width=64, text_width=64, image_size=32), project / "backbones" / "ViT-B-16.pt", "openai")
    save_tiny_clip(random_tiny_clip(1, vision_width=64, text_width=64, image_size=32, context_length=248),
                   project / "backbones" / "longclip-B.pt", "longclip")
    monkeypatch.chdir(project)
    cfg = ModelConfig(variant="dagger", clip="backbones/ViT-B-16.pt", longclip="backbones/longclip-B.pt",
                      classes=CLASSES, num_frames=4, drop_path=0.0)
    model = FineCLIPER.from_config(cfg)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    model.save_pretrained("runs/demo/fold_1/best")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # from now on, "runs/..." and "backbones/..." mean nothing
    monkeypatch.setenv("FINECLIPER_CACHE", str(tmp_path / "fc"))
    return {"project": project, "ckpt": project / "runs/demo/fold_1/best", "logits": _logits(model), "tmp": tmp_path}


def test_backbones_json_records_the_absolute_path(trained):
    rec = json.loads((trained["ckpt"] / "backbones.json").read_text())
    assert rec["clip"]["file"] == "ViT-B-16.pt" and rec["longclip"]["file"] == "longclip-B.pt"
    assert rec["clip"]["path"] == str(trained["project"] / "backbones" / "ViT-B-16.pt")


def test_a_moved_checkpoint_loads_from_another_working_directory(trained):
    moved = shutil.move(str(trained["ckpt"]), str(trained["tmp"] / "shared" / "model"))
    assert not os.path.exists("backbones")  # the relative paths of config.yaml do not resolve here
    # 1. the recorded absolute paths
    assert torch.equal(_logits(FineCLIPER.from_pretrained(moved)), trained["logits"])
    # 2. the backbones moved beside the checkpoint (its folder and its parent)
    bb = trained["project"] / "backbones"
    shutil.move(str(bb / "ViT-B-16.pt"), str(trained["tmp"] / "shared" / "ViT-B-16.pt"))
    shutil.move(str(bb / "longclip-B.pt"), os.path.join(moved, "longclip-B.pt"))
    assert torch.equal(_logits(FineCLIPER.from_pretrained(moved)), trained["logits"])
    # 3. the backbone cache folder ($FINECLIPER_CACHE/backbones)
    cache = factory.backbone_cache_dir()
    assert cache == trained["tmp"] / "fc" / "backbones"
    cache.mkdir(parents=True)
    shutil.move(str(trained["tmp"] / "shared" / "ViT-B-16.pt"), str(cache / "ViT-B-16.pt"))
    assert torch.equal(_logits(FineCLIPER.from_pretrained(moved)), trained["logits"])


def test_a_same_named_file_with_another_hash_is_passed_over(trained):
    """The recorded path now holds another file: the right one further down the list is used."""
    bb = trained["project"] / "backbones"
    cache = factory.backbone_cache_dir()
    cache.mkdir(parents=True)
    shutil.move(str(bb / "ViT-B-16.pt"), str(cache / "ViT-B-16.pt"))
    save_tiny_clip(random_tiny_clip(5, vision_width=64, text_width=64, image_size=32), bb / "ViT-B-16.pt", "openai")
    assert torch.equal(_logits(FineCLIPER.from_pretrained(trained["ckpt"])), trained["logits"])


def test_a_missing_backbone_is_one_line_naming_it_its_hash_and_the_flag(trained):
    os.remove(trained["project"] / "backbones" / "longclip-B.pt")
    sha = json.loads((trained["ckpt"] / "backbones.json").read_text())["longclip"]["sha256"]
    with pytest.raises(factory.CheckpointError) as e:
        FineCLIPER.from_pretrained(trained["ckpt"])
    msg = str(e.value)
    assert "\n" not in msg
    for needle in ("the Long-CLIP backbone longclip-B.pt", f"sha256 {sha}", "pass --longclip PATH",
                   str(factory.backbone_cache_dir())):
        assert needle in msg
    # given on the command line, it is used (and checked)
    shutil.copy(trained["project"] / "backbones" / "ViT-B-16.pt", trained["tmp"] / "other.pt")
    with pytest.raises(factory.CheckpointError, match="trained on the longclip backbone longclip-B.pt"):
        FineCLIPER.from_pretrained(trained["ckpt"], longclip=trained["tmp"] / "other.pt")


def test_cache_folder_default(monkeypatch):
    monkeypatch.delenv("FINECLIPER_CACHE", raising=False)
    assert factory.backbone_cache_dir() == factory.Path("~/.cache/finecliper/backbones").expanduser()
