"""``finecliper evaluate`` writes Fig. 5: per class, the mean cosine of the clips' video features to that
class's positive and negative prompt, equal to what the saved model computes on the same clips."""
import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from finecliper.cli.main import main
from finecliper.config import load_config
from finecliper.data.dataset import build_datasets, collate_clips
from finecliper.data.labels import classes
from finecliper.model.finecliper import FineCLIPER
from finecliper.train.config import ExperimentConfig

sys.path.insert(0, str(Path(__file__).parent))
from synthetic import dfew_with_tiny_clip  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig5")
    ann, data, ckpt = dfew_with_tiny_clip(root, 2, 2)
    args = [f"model.clip={ckpt}", f"data.annotations={ann}", f"data.root={data}", f"out={root / 'run'}",
            "data.image_size=32", "model.num_frames=2", "data.batch_size=7", "data.workers=0", "train.epochs=1",
            "train.optimizer=adamw", "train.lr=0.01", "train.threads=2"]
    assert main(["train", *args]) == 0
    return root, args


def test_evaluate_writes_per_class_positive_and_negative_similarity(trained, tmp_path):
    root, args = trained
    ckpt = root / "run" / "fold_1" / "last"
    assert main(["evaluate", "--checkpoint", str(ckpt), "--out", str(tmp_path), *args]) == 0
    rows = list(csv.DictReader((tmp_path / "test_class_similarity.csv").open()))
    assert [r["class"] for r in rows] == classes("dfew") and all(r["clips"] == "2" for r in rows)
    assert Image.open(tmp_path / "test_class_similarity.png").format == "PNG"

    # the same numbers from the saved model, computed here directly
    model = FineCLIPER.from_pretrained(ckpt).eval()
    cfg = load_config(ExperimentConfig, None, args)
    _, test = build_datasets(cfg.data)
    batch = collate_clips([test[i] for i in range(len(test))])
    with torch.no_grad():
        feats, _ = model.encode(batch)
        tp, tn = model.class_text_features()
    video, labels = feats["video"].numpy(), batch["label"].numpy()
    for c, r in enumerate(rows):
        mine = video[labels == c]
        assert float(r["cos_positive"]) == pytest.approx(float(np.mean(mine @ tp[c].numpy())), abs=1e-4)
        assert float(r["cos_negative"]) == pytest.approx(float(np.mean(mine @ tn[c].numpy())), abs=1e-4)
