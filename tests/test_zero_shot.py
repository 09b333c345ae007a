"""Zero-shot: caption-supervised contrastive training, class prompts through the description path."""
import math
import sys
from pathlib import Path

import pytest
import torch

from finecliper.clip.testing import save_tiny_clip
from finecliper.model.config import ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.pn import contrastive_loss
from finecliper.model.shapes import clip_config, random_clip
from finecliper.text.desc_cache import IDENTITY_KEYS, DescriptionCache

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import make_dfew_like  # noqa: E402

WORDS = ["red", "green", "blue", "yellow", "magenta", "cyan", "grey"]


def test_contrastive_loss_hand_computed():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    tau = 0.5
    logits = [[2.0, 1.2], [0.0, 1.6]]  # v @ t.T / tau
    ce = lambda row, i: -math.log(math.exp(row[i]) / sum(math.exp(x) for x in row))  # noqa: E731
    v2t = (ce(logits[0], 0) + ce(logits[1], 1)) / 2
    t2v = (ce([logits[0][0], logits[1][0]], 0) + ce([logits[0][1], logits[1][1]], 1)) / 2
    assert math.isclose(float(contrastive_loss(v, t, tau)), (v2t + t2v) / 2, rel_tol=1e-6)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("zs")
    ann, data = make_dfew_like(root, n_train_per_class=4, n_test_per_class=2)
    small = dict(vision_width=64, vision_layers=2, text_width=64, text_layers=2, image_size=32, embed_dim=32)
    clip = save_tiny_clip(random_clip(clip_config(**small)), root / "clip.pt", "openai")
    longclip = save_tiny_clip(random_clip(clip_config(**small), seed=3), root / "longclip.pt", "longclip")
    # captions of the training clips (no labels are used in zero-shot training)
    from finecliper.data.splits import read_split

    identity = {k: "test" for k in IDENTITY_KEYS} | {"leaks_label": False}
    cache = DescriptionCache(root / "captions.jsonl", identity)
    for r in read_split("dfew", ann, 1, "train") + read_split("dfew", ann, 1, "test"):
        text = f"the frames are {WORDS[r.label]}"
        cache.append(r.clip_id, text, text, [])
    return root, ann, data, clip, longclip


def test_class_prompts_use_the_description_path(setup):
    root, ann, data, clip, longclip = setup
    model = FineCLIPER.from_config(ModelConfig(zero_shot=True, clip=str(clip), longclip=str(longclip),
                                    classes=["happiness", "sadness"], num_frames=4)).eval()
    assert model.modalities == ("video",) and not hasattr(model, "prompt_encoder")
    with torch.no_grad():
        before = model.class_text_features()[0].clone()
        model.train()
        torch.nn.init.normal_(model.description_encoder.adapter_sets[0][0].D_fc2.weight, std=0.1)
        model.eval()
        after = model.class_text_features()[0]
    assert not torch.allclose(before, after)
    # at init, the prompts' features equal plain Long-CLIP text features (identity P_d, zero adapters)
    fresh = FineCLIPER.from_config(ModelConfig(zero_shot=True, clip=str(clip), longclip=str(longclip),
                                    classes=["happiness", "sadness"], num_frames=4)).eval()
    from finecliper.clip import load

    lc = load(longclip)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(lc.encode_text(lc.tokenize(["A person with an expression of happiness.",
                                                                       "A person with an expression of sadness."])), dim=-1)
        assert torch.allclose(fresh.class_text_features()[0], ref, atol=1e-5)


def test_zero_shot_train_then_evaluate_with_target_prompts(setup, tmp_path):
    import json

    from finecliper.cli.main import main

    root, ann, data, clip, longclip = setup
    common = [f"model.clip={clip}", f"model.longclip={longclip}", "model.zero_shot=true", f"data.annotations={ann}",
              f"data.root={data}", "data.image_size=32", "data.num_frames=4", "model.num_frames=4", "data.batch_size=7",
              "data.workers=0", "train.optimizer=adamw", "train.lr=0.005", "train.threads=2"]
    out = tmp_path / "run"
    assert main(["train", *common, f"out={out}", "train.epochs=2", f"descriptions={root / 'captions.jsonl'}"]) == 0
    hist = [json.loads(x) for x in (out / "fold_1" / "history.jsonl").read_text().splitlines()]
    assert len(hist) == 2 and hist[1]["train_loss"] > 0
    ev = tmp_path / "eval"
    assert main(["evaluate", "--zero-shot", "--checkpoint", str(out / "fold_1" / "last"), "--out", str(ev), *common]) == 0
    summary = json.loads((ev / "test_summary.json").read_text())
    assert summary["zero_shot"] is True and summary["n"] == 14


def test_dagger_variant_trains_and_evaluates_with_descriptions(setup, tmp_path):
    """The † variant end to end: frames + cached descriptions, both fused with adaptive weights."""
    import json

    from finecliper.cli.main import main

    root, ann, data, clip, longclip = setup
    common = [f"model.clip={clip}", f"model.longclip={longclip}", "model.variant=dagger", f"data.annotations={ann}",
              f"data.root={data}", "data.image_size=32", "data.num_frames=4", "model.num_frames=4", "data.batch_size=7",
              "data.workers=0", "train.optimizer=adamw", "train.lr=0.01", "train.threads=2",
              f"descriptions={root / 'captions.jsonl'}"]
    out = tmp_path / "run"
    assert main(["train", *common, f"out={out}", "train.epochs=2"]) == 0
    hist = [json.loads(x) for x in (out / "fold_1" / "history.jsonl").read_text().splitlines()]
    assert set(hist[-1]["mean_weights"]) == {"video", "description"}
    assert math.isclose(sum(hist[-1]["mean_weights"].values()), 1.0, abs_tol=1e-3)
    assert main(["evaluate", "--checkpoint", str(out / "fold_1" / "best"), "--out", str(tmp_path / "ev"), *common]) == 0
    assert json.loads((tmp_path / "ev" / "test_summary.json").read_text())["n"] == 14
