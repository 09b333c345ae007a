"""Tunable parameter counts equal the analytic formula, per module, for every variant (ViT-B/16 shape)."""
import pytest
import torch
from transformers import CLIPModel

from finecliper.clip.tokenizer import load_tokenizer
from finecliper.model.adapters import Adapter, adapter_parameter_count
from finecliper.model.config import VARIANTS, ModelConfig
from finecliper.model.finecliper import FineCLIPER
from finecliper.model.shapes import MetaBackbones, clip_config, count_parameters, random_clip

BACKBONES = MetaBackbones()  # weightless CLIPs of each shape, built once for the module


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


# ----------------------------------------------------------------------------- every ablation row (Tab. 4-9, Fig. 8)

def adapter(d: int, ratio: float = 0.25) -> int:
    h = int(d * ratio)
    return 2 * d * h + h + d


def aim(width: int, layers: int, frames: int = 16) -> int:
    """T, S and MLP adapters in every block, the temporal embedding and the ln_post copy."""
    return 3 * layers * adapter(width) + frames * width + 2 * width


SHAPES = {"ViT-B/16": (768, 12, 512, 12, 512), "ViT-B/32": (768, 12, 512, 12, 512), "ViT-L/14": (1024, 24, 768, 12, 768)}
V, P, L, D = "video", "parsing", "landmarks", "description"
# (table, row) -> (modalities, text supervision, video adapters): what each row is, stated here independently
ROWS = {
    ("4", "low"): ({V}, "pos_neg", True), ("4", "middle"): ({P, L}, "pos_neg", True),
    ("4", "high"): ({D}, "pos_neg", True), ("4", "low+middle+high"): ({V, P, L, D}, "pos_neg", True),
    ("4", "low+middle"): ({V, P, L}, "pos_neg", True), ("4", "low+high"): ({V, D}, "pos_neg", True),
    ("4", "middle+high"): ({P, L, D}, "pos_neg", True),
    ("5", "none"): ({V}, "pos_neg", True), ("5", "parsing"): ({V, P}, "pos_neg", True),
    ("5", "landmarks"): ({V, L}, "pos_neg", True), ("5", "both"): ({V, P, L}, "pos_neg", True),
    ("6", "none+frozen"): ({V}, "none", False), ("6", "pos+frozen"): ({V}, "pos", False),
    ("6", "pos_neg+frozen"): ({V}, "pos_neg", False), ("6", "none+adapters"): ({V}, "none", True),
    ("6", "pos_neg+adapters"): ({V}, "pos_neg", True), ("6", "pos+adapters"): ({V}, "pos", True),
    ("7", "less"): ({V}, "pos_neg", True), ("7", "no"): ({V}, "pos_neg", True),
    ("8", "vit_b16"): ({V, P, L, D}, "pos_neg", True), ("8", "vit_b32"): ({V, P, L, D}, "pos_neg", True),
    ("8", "vit_l14"): ({V, P, L, D}, "pos_neg", True),
    **{("9", k): ({V}, "pos_neg", True) for k in ("s03", "s05", "s07")},
    **{("fig8", f"wv{i:02d}"): ({V, P, L, D}, "pos_neg", True) for i in range(1, 10)},
    ("fig8", "adaptive"): ({V, P, L, D}, "pos_neg", True),
}


def expected_row(shape: str, mods: set, text: str, video_adapters: bool, classes: int = 7) -> dict[str, int]:
    width, layers, text_width, text_layers, embed = SHAPES[shape]
    out = {}
    if V in mods and video_adapters:
        out["video_encoder"] = aim(width, layers)
    if text == "none":
        out["class_head"] = classes * embed
    else:
        out["prompt_encoder"] = (2 if text == "pos_neg" else 1) * text_layers * adapter(text_width)
    if mods & {P, L}:
        out["map_encoder"] = aim(width, layers)
        out |= {f"{m}_projection": width * embed for m in mods & {P, L}}
    if D in mods:  # Long-CLIP ViT-B (text width 512, 12 layers) into the backbone's joint space
        out |= {"description_encoder": 12 * adapter(512), "description_projection": 512 * embed}
    return out


def test_every_ablation_row_is_listed_here():
    from finecliper.ablation.tables import TABLES

    assert {(t.key, r.key) for t in TABLES.values() for r in t.rows} == set(ROWS)


@pytest.mark.parametrize("table,row", sorted(ROWS))
def test_ablation_row_trainable_counts_match_formula(table, row):
    from finecliper.ablation.tables import get_table
    from finecliper.config import load_config
    from finecliper.train.config import ExperimentConfig

    r = get_table(table).row(row)
    cfg = load_config(ExperimentConfig, "dfew", [*r.overrides, "model.classes=[a,b,c,d,e,f,g]"]).model
    counts = count_parameters(cfg, r.backbone, BACKBONES, per_module=True)
    expected = expected_row(r.backbone, *ROWS[(table, row)])
    got = {k: v["trainable"] for k, v in counts.items() if k != "total" and v["trainable"]}
    assert got == expected
    assert counts["total"]["trainable"] == sum(expected.values())
    assert counts["clip"]["trainable"] == 0 and counts["clip"]["frozen"] > 0


def test_ablation_counts_in_words():
    from finecliper.ablation.tables import get_table
    from finecliper.config import load_config
    from finecliper.train.config import ExperimentConfig

    def trainable(table, row):
        r = get_table(table).row(row)
        cfg = load_config(ExperimentConfig, "dfew", [*r.overrides, "model.classes=[a,b,c,d,e,f,g]"]).model
        return count_parameters(cfg, r.backbone, BACKBONES)["trainable"]

    # no adapters and no text: the classifier head is all that trains (7 classes x 512)
    assert trainable("6", "none+frozen") == 3_584
    # positive prompts only: exactly one text adapter set less than the paper's PN model
    assert trainable("6", "pos_neg+adapters") - trainable("6", "pos+adapters") == 12 * 131_712
    # FineCLIPER*† on ViT-L/14: far beyond the paper's "20M" (Tab. 8)
    assert trainable("8", "vit_l14") == 86_366_208
