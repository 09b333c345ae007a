"""The Hugging Face Hub: push (everything up to the HTTP call), load by repo id from a cache laid out as
huggingface_hub lays it out, offline, at a revision; the model card."""
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard, scan_cache_dir
from huggingface_hub import constants as hf_constants

from finecliper.cli.main import main
from finecliper.clip.testing import random_tiny_clip, save_tiny_clip
from finecliper.model import hub
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER

sys.path.insert(0, str(Path(__file__).parent))
from hub_cache import FakeHub, publish  # noqa: E402

CLASSES = ["happiness", "sadness", "neutral"]
HUB_FILES = {"README.md", "backbones.json", "config.yaml", "model.safetensors"}


def _frames(t=4):
    return {"frames": torch.randn(2, t, 3, 32, 32, generator=torch.Generator().manual_seed(0))}


def _logits(model):
    with torch.no_grad():
        return model.eval()(_frames()).logits


def _randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A training run's fold folder: fold_1/{best/, summary.json, config.yaml}, backbones elsewhere."""
    root = tmp_path_factory.mktemp("hubrun")
    clip = save_tiny_clip(random_tiny_clip(0, vision_width=64, text_width=64, image_size=32), root / "clip.pt", "openai")
    cfg = ModelConfig(variant="base", clip=str(clip), classes=CLASSES, num_frames=4, drop_path=0.0)
    model = _randomise(FineCLIPER.from_config(cfg), 0)
    fold = root / "run" / "fold_1"
    model.save_pretrained(fold / "best")
    (fold / "summary.json").write_text(json.dumps({
        "fold": 1, "dataset": "dfew", "variant": "base", "data_variant": "clip_224x224", "epochs": 3,
        "last": {"uar": 0.41, "war": 0.5, "epoch": 3, "selection": "last epoch"},
        "best": {"uar": 0.4567, "war": 0.5123, "epoch": 2, "selection": "best-on-test epoch (selected by test UAR)"}}))
    (fold / "config.yaml").write_text(yaml.safe_dump({"model": {"variant": "base", "clip": str(clip)},
                                                      "data": {"root": str(root / "alice" / "data" / "DFEW"), "fold": 1},
                                                      "train": {"epochs": 3, "lr": 0.001}}))
    return {"root": root, "clip": clip, "ckpt": fold / "best", "model": model, "logits": _logits(model)}


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    return FakeHub(tmp_path / "hf_cache", tmp_path / "uploads").install(monkeypatch)


def test_push_uploads_a_portable_folder_and_the_model_loads_back_by_id_offline(run, fake_hub, tmp_path, monkeypatch):
    url = hub.push(run["ckpt"], "alice/fer-base")
    (up,) = fake_hub.uploads
    assert url.endswith(up["commit"]) and up["repo_id"] == "alice/fer-base"
    assert {p.name for p in up["folder"].iterdir()} == HUB_FILES
    # the trainer's absolute paths stay home: backbones.json keeps hash, format and file name only
    rec = json.loads((up["folder"] / "backbones.json").read_text())
    local = json.loads((run["ckpt"] / "backbones.json").read_text())
    assert local["clip"]["path"] == str(run["clip"].resolve())
    assert rec == {"clip": {k: v for k, v in local["clip"].items() if k != "path"}}
    assert yaml.safe_load((up["folder"] / "config.yaml").read_text())["clip"] == "clip.pt"
    assert (up["folder"] / "model.safetensors").read_bytes() == (run["ckpt"] / "model.safetensors").read_bytes()
    # huggingface_hub itself reads the cache the upload landed in
    (repo,) = scan_cache_dir(tmp_path / "hf_cache").repos
    assert repo.repo_id == "alice/fer-base" and {r.commit_hash for r in repo.revisions} == {up["commit"]}
    assert {f.file_name for r in repo.revisions for f in r.files} == HUB_FILES
    # load by id with HF_HUB_OFFLINE=1: identical logits
    loaded = FineCLIPER.from_pretrained("alice/fer-base", clip=run["clip"], cache_dir=tmp_path / "hf_cache")
    assert torch.equal(_logits(loaded), run["logits"])
    # without clip=: the backbone is found by name and hash in $FINECLIPER_CACHE/backbones
    monkeypatch.setenv("FINECLIPER_CACHE", str(tmp_path / "fc"))
    (tmp_path / "fc" / "backbones").mkdir(parents=True)
    shutil.copy(run["clip"], tmp_path / "fc" / "backbones" / "clip.pt")
    monkeypatch.chdir(tmp_path)
    loaded = FineCLIPER.from_pretrained("alice/fer-base", cache_dir=tmp_path / "hf_cache", local_files_only=True)
    assert torch.equal(_logits(loaded), run["logits"])


def test_revisions_branch_tag_and_commit(run, tmp_path, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    cache = tmp_path / "cache"
    v1 = publish(hub.stage(run["ckpt"], tmp_path / "v1"), cache, "alice/m", refs=("v1",))
    newer = _randomise(FineCLIPER.from_pretrained(run["ckpt"]), 7)
    newer.save_pretrained(tmp_path / "newer")
    main_commit = publish(hub.stage(tmp_path / "newer", tmp_path / "v2"), cache, "alice/m", refs=("main",))
    assert v1 != main_commit
    kw = {"clip": run["clip"], "cache_dir": cache}
    assert torch.equal(_logits(FineCLIPER.from_pretrained("alice/m", revision="v1", **kw)), run["logits"])
    assert torch.equal(_logits(FineCLIPER.from_pretrained("alice/m", revision=v1, **kw)), run["logits"])
    assert torch.equal(_logits(FineCLIPER.from_pretrained("alice/m", **kw)), _logits(newer))
    with pytest.raises(hub.HubError, match=r"alice/m: not a local folder, and not in the Hugging Face cache .* "
                                           r"at revision 'v9'.*HF_HUB_OFFLINE=1"):
        FineCLIPER.from_pretrained("alice/m", revision="v9", **kw)


def test_an_id_that_is_neither_a_folder_nor_cached_is_one_line(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(hub.HubError, match="bob/missing: not a local folder, and not in the Hugging Face cache"):
        FineCLIPER.from_pretrained("bob/missing")
    with pytest.raises(hub.factory.CheckpointError, match="no such checkpoint folder"):
        FineCLIPER.from_pretrained(tmp_path / "not" / "here" / "at-all")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    assert main(["predict", str(video), "--checkpoint", "bob/missing", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: bob/missing: not a local folder")


def test_model_card(run, tmp_path):
    card = hub.model_card(run["ckpt"], repo_id="alice/fer-base")
    assert isinstance(card, ModelCard)
    assert card.data.library_name == "finecliper" and card.data.license == "mit"
    assert {"finecliper", "dynamic-facial-expression-recognition", "finecliper-base"} <= set(card.data.tags)
    text = card.text
    sha = json.loads((run["ckpt"] / "backbones.json").read_text())["clip"]["sha256"]
    for needle in ("FineCLIPER (base) on DFEW fold 1", "happiness, sadness, neutral", f"`{sha}`", "`clip.pt`",
                   "openaipublic.azureedge.net", "data variant: clip_224x224", "| best (this one) | 2 | 45.67 | 51.23 |",
                   "lr: 0.001", "root: …/DFEW", "--checkpoint alice/fer-base", "FINECLIPER_CACHE"):
        assert needle in text, needle
    assert str(run["root"]) not in text and "Synthetic demo" not in text  # no absolute path of the trainer's
    # a checkpoint made by `finecliper demo` says what it is
    demo = tmp_path / "demo"
    shutil.copytree(run["root"] / "run", demo / "run")
    (demo / "finecliper_demo.json").write_text("{}")
    card = hub.model_card(demo / "run" / "fold_1" / "best")
    assert "Synthetic demo checkpoint" in card.text and "synthetic-demo" in card.data.tags


def test_model_push_to_hub_and_the_push_command(run, fake_hub, tmp_path, capsys):
    url = run["model"].push_to_hub("alice/from-python")
    (up,) = fake_hub.uploads
    assert "alice/from-python" in url and {p.name for p in up["folder"].iterdir()} == HUB_FILES
    assert "FineCLIPER (base)" in (up["folder"] / "README.md").read_text()
    # --dry-run writes the folder that would be uploaded, and uploads nothing
    staged = tmp_path / "staged"
    assert main(["push", str(run["ckpt"]), "alice/cli", "--dry-run", str(staged)]) == 0
    assert len(fake_hub.uploads) == 1 and {p.name for p in staged.iterdir()} == HUB_FILES
    assert main(["push", str(run["ckpt"]), "alice/cli", "--private", "--message", "first"]) == 0
    up = fake_hub.uploads[-1]
    assert up["repo_id"] == "alice/cli" and up["commit_message"] == "first"
    assert (up["folder"] / "README.md").read_text() == (staged / "README.md").read_text()
    assert "alice/cli" in capsys.readouterr().out
    loaded = FineCLIPER.from_pretrained("alice/cli", clip=run["clip"], cache_dir=fake_hub.cache)
    assert torch.equal(_logits(loaded), run["logits"])


def test_push_refuses_a_checkpoint_that_records_no_backbone(run, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(run["ckpt"], bad)
    (bad / "backbones.json").write_text("{}")
    with pytest.raises(hub.factory.CheckpointError, match="records no clip backbone"):
        hub.stage(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()
