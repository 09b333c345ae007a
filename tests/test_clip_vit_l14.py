"""ViT-L/14 (paper Tab. 8) through the same code: a tiny random CLIP with L/14's layout (patch 14, 64-wide heads,
vision:text width 4:3, joint space as wide as the text tower) loads from OpenAI and open_clip files, counts as
the analytic formula says (``finecliper info --clip``), and trains and evaluates end to end."""
import json
import re
import sys
from pathlib import Path

import pytest

from finecliper.cli.main import main
from finecliper.clip import load
from finecliper.clip.testing import random_tiny_clip, save_tiny_clip, tiny_clip_config

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import make_dfew_like  # noqa: E402

# ViT-L/14: vision 1024 wide (16 heads), text 768 (12 heads), joint space 768, patch 14. Here a quarter:
VISION, TEXT, PATCH, SIZE = 256, 192, 14, 28


def adapter(d: int) -> int:
    h = d // 4
    return 2 * d * h + h + d


@pytest.fixture(scope="module")
def l14_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("l14")
    model = random_tiny_clip(3, config=tiny_clip_config(vision_width=VISION, patch_size=PATCH, image_size=SIZE,
                                                        text_width=TEXT, projection_dim=TEXT))
    return {"openai": save_tiny_clip(model, root / "tiny-l14-openai.pt", "openai"),
            "open_clip": save_tiny_clip(model, root / "oc" / "tiny-l14.safetensors", "open_clip"),
            "root": root}


@pytest.mark.parametrize("fmt", ["openai", "open_clip"])
def test_l14_layout_loads_with_its_patch_heads_and_joint_space(l14_files, fmt):
    cfg = load(l14_files[fmt]).model.config
    v, t = cfg.vision_config, cfg.text_config
    assert (v.patch_size, v.image_size, v.hidden_size, v.num_attention_heads) == (PATCH, SIZE, VISION, VISION // 64)
    assert (t.hidden_size, t.num_attention_heads, cfg.projection_dim) == (TEXT, TEXT // 64, TEXT)


def test_info_counts_the_l14_layout(l14_files, capsys):
    assert main(["info", "--clip", str(l14_files["openai"]), "--variant", "base"]) == 0
    out = capsys.readouterr().out
    rows = {m.group(1): int(m.group(2).replace(",", "")) for m in re.finditer(r"│ (\w+)\s+│\s+([\d,]+) │", out)}
    # 2 blocks of T, S and MLP adapters at width 256, 16 temporal embeddings, ln_post; 2 x 2 text adapters at 192
    assert rows["video_encoder"] == 3 * 2 * adapter(VISION) + 16 * VISION + 2 * VISION
    assert rows["prompt_encoder"] == 2 * 2 * adapter(TEXT)
    assert rows["total"] == rows["video_encoder"] + rows["prompt_encoder"]


def test_l14_layout_trains_and_evaluates_through_the_same_code(l14_files, tmp_path):
    ann, data = make_dfew_like(tmp_path / "dfew", n_train_per_class=2, n_test_per_class=1, size=SIZE)
    out = tmp_path / "run"
    args = [f"model.clip={l14_files['openai']}", f"data.annotations={ann}", f"data.root={data}", f"out={out}",
            "train.epochs=1", f"data.image_size={SIZE}", "model.num_frames=2", "data.batch_size=7", "data.workers=0",
            "train.optimizer=adamw", "train.lr=0.01", "train.threads=2"]
    assert main(["train", *args]) == 0
    fold = out / "fold_1"
    assert json.loads((fold / "last" / "backbones.json").read_text())["clip"]["file"] == "tiny-l14-openai.pt"
    assert main(["evaluate", "--checkpoint", str(fold / "last"), "--out", str(tmp_path / "eval"), *args]) == 0
    again = json.loads((tmp_path / "eval" / "test_summary.json").read_text())
    assert again["confusion"] == json.loads((fold / "last_summary.json").read_text())["confusion"]
