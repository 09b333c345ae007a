"""The paper's ablations as data: every row of Tab. 4–9 and the appendix fixed-weight sweep (Fig. 8).

A row is a set of ``key=value`` overrides applied on top of a dataset config (``--config dfew`` …),
what it means in words, and the paper's published numbers for it (UAR, WAR in %, per dataset). Where
the paper leaves a row open to more than one reading, the row carries the reading we chose and why
(``note``). Rows marked ``extra`` are not in the paper's table (other combinations of the same knobs);
they run only when named with ``--rows``.

Every number under ``paper`` is copied from arXiv 2407.02157v2 (Tab. 1 and 4–9) and is the paper's,
not ours; ``finecliper ablate`` prints ours beside them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DATASETS = ("dfew", "ferv39k", "mafw")

# (UAR, WAR) per dataset, as printed in the paper
Scores = dict[str, tuple[float, float]]


def _paper(dfew: tuple[float, float], ferv39k: tuple[float, float], mafw: tuple[float, float]) -> Scores:
    return {"dfew": dfew, "ferv39k": ferv39k, "mafw": mafw}


# Rows that the paper prints more than once (identical numbers in several tables)
BASE = _paper((62.81, 72.86), (42.88, 52.01), (42.19, 53.12))          # FineCLIPER (Tab. 1)
STAR = _paper((64.89, 75.05), (44.15, 52.12), (43.02, 54.69))          # FineCLIPER*
DAGGER = _paper((65.72, 75.01), (43.86, 53.02), (43.91, 54.11))        # FineCLIPER†
STAR_DAGGER = _paper((65.98, 76.21), (45.22, 53.98), (45.01, 56.91))   # FineCLIPER*†


@dataclass(frozen=True)
class Row:
    key: str                       # short name for --rows, e.g. "low", "pos_neg+adapters"
    cells: tuple[str, ...]         # the row's leading cells in the paper's layout (Table.columns)
    overrides: tuple[str, ...]     # key=value on top of the dataset config
    meaning: str                   # what the row is, in words
    paper: Scores = field(default_factory=dict)  # the paper's (UAR, WAR) per dataset; empty: not published
    paper_params_m: float | None = None          # tunable parameters (M) where the paper states them
    note: str = ""                 # an ambiguity and the reading chosen
    extra: bool = False            # not a row of the paper's table: runs only when named
    backbone: str = "ViT-B/16"     # the CLIP the row is built on (Tab. 8 varies it)


@dataclass(frozen=True)
class Table:
    key: str                       # "4" … "9", "fig8"
    title: str
    columns: tuple[str, ...]       # headers of the leading cells
    rows: tuple[Row, ...]
    note: str = ""

    def row(self, key: str) -> Row:
        for r in self.rows:
            if r.key == key:
                return r
        raise KeyError(f"table {self.key} has no row {key!r}; its rows are: {', '.join(r.key for r in self.rows)}")

    def paper_rows(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if not r.extra)


def _modalities(*names: str) -> str:
    return f"model.modalities=[{','.join(names)}]"


TAB4 = Table(
    "4", "Tab. 4: semantic levels (low = frames, middle = parsing + landmarks, high = descriptions)",
    ("Levels",),
    (
        Row("low", ("Low-level Only",), ("model.variant=base",),
            "frames only: AIM-adapted video encoder and PN prompts (= FineCLIPER)", BASE, 13),
        Row("middle", ("Middle-level Only",), ("model.variant=star", _modalities("parsing", "landmarks")),
            "parsing and landmark maps only, through the map encoder; the frames are not encoded", _paper(
                (61.91, 72.62), (42.92, 52.22), (43.02, 53.11)),
            note="the paper does not say whether 'only' drops the frames from the input or only from the "
                 "fusion; we drop them (no video encoder is built, so none of its parameters count)"),
        Row("high", ("High-level Only",), ("model.variant=dagger", _modalities("description")),
            "descriptions only, through the Long-CLIP text tower with adapters; the frames are not encoded",
            _paper((63.15, 73.95), (43.13, 52.97), (44.12, 54.60)),
            note="as 'middle': the model scores the description feature alone against the PN prompts"),
        Row("low+middle+high", ("Low-Middle-High (Ours)",), ("model.variant=star_dagger",),
            "frames, maps and descriptions fused adaptively (= FineCLIPER*†)", STAR_DAGGER, 20),
        Row("low+middle", ("Low-Middle",), ("model.variant=star",),
            "frames + maps (= FineCLIPER*)", STAR, 19, extra=True,
            note="not a row of Tab. 4; the paper's numbers are its Tab. 1 FineCLIPER*"),
        Row("low+high", ("Low-High",), ("model.variant=dagger",),
            "frames + descriptions (= FineCLIPER†)", DAGGER, 14, extra=True,
            note="not a row of Tab. 4; the paper's numbers are its Tab. 1 FineCLIPER†"),
        Row("middle+high", ("Middle-High",), ("model.variant=star_dagger", _modalities("parsing", "landmarks", "description")),
            "maps + descriptions, no frames", extra=True, note="not in the paper"),
    ),
    note="Rows 'low' and 'low+middle+high' repeat Tab. 1's FineCLIPER and FineCLIPER*† numbers.",
)

TAB5 = Table(
    "5", "Tab. 5: middle-level cues (face parsing, landmarks), on top of the frames",
    ("Parsing", "Land."),
    (
        Row("none", ("✗", "✗"), ("model.variant=base",), "frames only (= FineCLIPER)", BASE, 13),
        Row("parsing", ("✓", "✗"), ("model.variant=star", _modalities("video", "parsing")),
            "frames + parsing maps (the map encoder reads the parsing maps only)",
            _paper((63.66, 73.86), (43.66, 52.00), (42.78, 53.59))),
        Row("landmarks", ("✗", "✓"), ("model.variant=star", _modalities("video", "landmarks")),
            "frames + landmark maps (the map encoder reads the landmark maps only)",
            _paper((63.71, 74.16), (43.53, 52.08), (42.56, 53.16))),
        Row("both", ("✓", "✓"), ("model.variant=star",), "frames + parsing + landmarks (= FineCLIPER*)", STAR, 19),
    ),
)

TAB6 = Table(
    "6", "Tab. 6: text supervision (none / positive / positive + negative) and video adapters",
    ("Text", "Video"),
    (
        Row("none+frozen", ("✗", "✗"), ("model.variant=base", "model.text_supervision=none", "model.video_adapters=false"),
            "frozen frame-wise CLIP features (mean over frames) scored by a trainable cosine classifier: a linear "
            "probe, the only trainable tensor is the (classes × embedding) head",
            _paper((59.61, 71.25), (41.27, 51.65), (39.89, 52.55)),
            note="'no text' read as class labels without any text: a linear (cosine) classifier on the joint-space "
                 "feature, as AIM's own linear head, instead of plain zero-shot prompt scoring (which has nothing "
                 "to train). The paper's numbers for this row equal DFER-CLIP's published results exactly, so the "
                 "authors probably copied them; 'Video ✗' read as no AIM adapters at all: the frozen CLIP image "
                 "tower applied frame by frame, its own ln_post, no temporal embedding"),
        Row("pos+frozen", ("pos", "✗"), ("model.variant=base", "model.text_supervision=pos", "model.video_adapters=false"),
            "frozen frame-wise CLIP; positive prompts with one set of text adapters; score cos(F, T_p)",
            _paper((60.32, 71.55), (41.51, 51.70), (40.47, 52.62))),
        Row("pos_neg+frozen", ("pos+neg", "✗"), ("model.variant=base", "model.video_adapters=false"),
            "frozen frame-wise CLIP; positive and negative prompts, each with its own text adapters",
            _paper((61.19, 71.95), (42.29, 51.72), (40.71, 52.86))),
        Row("none+adapters", ("✗", "✓"), ("model.variant=base", "model.text_supervision=none"),
            "AIM-adapted video encoder with a cosine classifier head (AIM as published, in the joint space)",
            _paper((61.88, 72.08), (41.56, 51.77), (41.26, 51.44))),
        Row("pos_neg+adapters", ("pos+neg", "✓"), ("model.variant=base",),
            "AIM-adapted video encoder and PN prompts (= FineCLIPER)", BASE, 13),
        Row("pos+adapters", ("pos", "✓"), ("model.variant=base", "model.text_supervision=pos"),
            "AIM-adapted video encoder and positive prompts only", extra=True, note="not in the paper"),
    ),
)

TAB7 = Table(
    "7", "Tab. 7: the word of the negative descriptor",
    ("Negative Descriptor",),
    (
        Row("less", ("\"less\"",), ("model.variant=base", "model.neg_template=A person with an expression of less {}."),
            "negative prompts 'A person with an expression of less {class}.'",
            _paper((62.15, 72.51), (42.11, 51.79), (41.97, 52.91))),
        Row("no", ("\"no\" (Ours)",), ("model.variant=base", "model.neg_template=A person with an expression of no {}."),
            "negative prompts 'A person with an expression of no {class}.' (= FineCLIPER)", BASE, 13),
    ),
)

TAB8 = Table(
    "8", "Tab. 8: larger backbones (FineCLIPER*†)",
    ("Backbone",),
    (
        Row("vit_b16", ("CLIP-ViT-B/16",), ("model.variant=star_dagger",), "FineCLIPER*† on CLIP ViT-B/16",
            STAR_DAGGER, 20, backbone="ViT-B/16"),
        Row("vit_b32", ("CLIP-ViT-B/32",), ("model.variant=star_dagger",), "FineCLIPER*† on CLIP ViT-B/32",
            _paper((66.78, 77.39), (46.99, 55.03), (46.79, 57.89)), 20, backbone="ViT-B/32"),
        Row("vit_l14", ("CLIP-ViT-L/14",), ("model.variant=star_dagger",), "FineCLIPER*† on CLIP ViT-L/14 (224 px)",
            _paper((68.01, 78.93), (47.89, 56.41), (47.79, 58.26)), 20, backbone="ViT-L/14",
            note="the paper gives 20M tunable parameters for every backbone, which cannot hold for ViT-L/14 "
                 "(width 1024, 24 blocks: its AIM adapters alone are ~4x ViT-B's); we report our counts. The "
                 "description tower stays the Long-CLIP of model.longclip; its projection P_d maps into the "
                 "backbone's joint space"),
    ),
    note="Give each backbone's checkpoint with --backbone NAME=PATH (ViT-B/16 defaults to model.clip).",
)

TAB9 = Table(
    "9", "Tab. 9: the adapter scale s of the MLP-parallel adapter (Eq. 7)",
    ("s",),
    tuple(
        Row(f"s{int(s * 10):02d}", (f"{s}",), ("model.variant=base", f"model.adapter_scale={s}"),
            f"FineCLIPER with s = {s}" + (" (the paper's choice)" if s == 0.5 else ""), paper, 13 if s == 0.5 else None)
        for s, paper in ((0.3, _paper((62.51, 72.68), (42.61, 51.19), (41.84, 52.71))), (0.5, BASE),
                         (0.7, _paper((62.58, 72.70), (42.57, 51.46), (41.76, 53.66))))
    ),
)

FIG8 = Table(
    "fig8", "Appendix Fig. 8: a fixed video weight w_v (rest spread evenly over the other modalities) vs adaptive",
    ("Fusion",),
    tuple(
        Row(f"wv{int(round(w * 10)):02d}", (f"fixed w_v = {w:.1f}",),
            ("model.variant=star_dagger", "model.fusion=fixed", f"model.fusion_video_weight={w:.1f}"),
            f"FineCLIPER*† with fusion and loss weights fixed: video {w:.1f}, parsing, landmarks and description "
            f"{(1 - w) / 3:.3f} each", note="the paper shows this sweep only as a plot: no numbers to copy")
        for w in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    ) + (Row("adaptive", ("adaptive (Ours)",), ("model.variant=star_dagger",),
             "FineCLIPER*† with the adaptive weights of Eq. 9 (= Tab. 1)", STAR_DAGGER, 20),),
    note="The fixed weights replace Eq. 9 in both the fused feature (Eq. 10) and the loss (Eq. 11), as the "
         "adaptive ones do; where a clip has no face, the weights of the map modalities go to the others.",
)

TABLES: dict[str, Table] = {t.key: t for t in (TAB4, TAB5, TAB6, TAB7, TAB8, TAB9, FIG8)}
ALIASES = {"sweep": "fig8", "8a": "fig8"}


def get_table(key: str) -> Table:
    key = ALIASES.get(str(key).lower(), str(key).lower())
    if key not in TABLES:
        raise KeyError(f"no ablation table {key!r}; choose one of {', '.join(TABLES)} (or 'sweep' for fig8)")
    return TABLES[key]


def select_rows(table: Table, keys: list[str] | None) -> list[Row]:
    """The rows named (in the table's order), the paper's rows when none are, every row for ['all']."""
    if not keys:
        return list(table.paper_rows())
    if keys == ["all"]:
        return list(table.rows)
    wanted = [table.row(k).key for k in keys]  # raises on an unknown key
    return [r for r in table.rows if r.key in wanted]
