"""Model configuration and the four named variants of FineCLIPER."""
from __future__ import annotations

from dataclasses import dataclass, field

from finecliper.config import ConfigError

# Modalities each variant fuses (paper Tab. 1): v = frames, p = parsing maps, l = landmark maps,
# d = fine-grained description.
VARIANTS: dict[str, tuple[str, ...]] = {
    "base": ("video",),
    "star": ("video", "parsing", "landmarks"),
    "dagger": ("video", "description"),
    "star_dagger": ("video", "parsing", "landmarks", "description"),
}
VARIANT_SYMBOLS = {"base": "FineCLIPER", "star": "FineCLIPER*", "dagger": "FineCLIPER†", "star_dagger": "FineCLIPER*†"}
MODALITIES = ("video", "parsing", "landmarks", "description")  # every modality, in fusion order
MAP_MODALITIES = ("parsing", "landmarks")  # read by the map encoder
FUSIONS = ("max_norm", "softmax", "fixed")
TEXT_SUPERVISIONS = ("pos_neg", "pos", "none")
ATTENTIONS = ("sdpa", "eager")


@dataclass
class ModelConfig:
    variant: str = "base"  # base | star (*) | dagger (†) | star_dagger (*†): the modalities fused
    clip: str | None = None  # CLIP checkpoint (OpenAI .pt, open_clip, HF dir, Long-CLIP); frozen backbone
    longclip: str | None = None  # Long-CLIP checkpoint for the description tower (variants with "description")
    allow_pickle: bool = False  # let TorchScript/pickled checkpoints execute code when loaded
    classes: list[str] = field(default_factory=list)  # class words, in label order
    pos_template: str = "A person with an expression of {}."  # positive prompt; {} is the class word
    neg_template: str = "A person with an expression of no {}."  # negative prompt (Tab. 7: "no" vs "less")
    pn_lambda: float = 1.0  # S = cos(F, T_p) - lambda * cos(F, T_n)
    tau: float = 0.01  # logits = S / tau
    num_frames: int = 16  # frames per clip; the data pipeline samples this many (data.num_frames follows it)
    adapter_ratio: float = 0.25  # adapter bottleneck width, as a fraction of the tower width
    adapter_scale: float = 0.5  # s, the MLP-parallel adapter's scale
    drop_path: float = 0.1  # stochastic depth rate of the adapted image towers
    share_pn_adapters: bool = False  # one adapter set for positive and negative prompts
    map_encoder_shares_video_adapters: bool = False  # E_p/E_l (the map encoder) reuse E_v's adapters
    # The modalities fused, overriding the variant's (paper Tab. 4/5): any of MODALITIES, e.g. [parsing, landmarks]
    # for "middle level only" (no frame encoder is built) or [video, parsing] for "parsing only" (Tab. 5).
    modalities: list[str] | None = None
    # Class supervision (paper Tab. 6): pos_neg = PN prompts with adapter sets A_p, A_n (the paper's); pos =
    # positive prompts only (one adapter set, S = cos(F, T_p)); none = no text: a trainable cosine classifier
    # (one joint-space vector per class) in place of the prompts.
    text_supervision: str = "pos_neg"
    video_adapters: bool = True  # False: the frames go through the frozen CLIP image tower as is (Tab. 6 "Video ✗")
    fusion: str = "max_norm"  # max_norm (Eq. 9 as resolved in reference §10.9) | softmax | fixed (appendix Fig. 8)
    fusion_video_weight: float = 0.5  # fusion=fixed: w_v; the other modalities share 1 - w_v evenly
    fusion_tau: float = 1.0  # temperature of the softmax fusion option
    fusion_floor: float = 0.0  # minimum weight per available modality (keeps every branch learning)
    fused_ce_weight: float = 0.0  # optional CE on the fused scores, off by default
    train_clip_projections: bool = False  # unfreeze P_v and P_t
    desc_context_length: int = 248  # tokens of a description read by the Long-CLIP tower
    attention: str = "sdpa"  # attention kernel of the frozen towers: sdpa | eager (transformers' implementations)
    grad_checkpoint: bool = False  # recompute adapted blocks in backward (saves GPU memory)
    # Zero-shot (paper Tab. 3): no labels; the video encoder and the description path (Long-CLIP + adapters
    # + P_d) are trained contrastively on clip-caption pairs, and class prompts go through that same path.
    zero_shot: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.variant in VARIANTS, f"model.variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}"),
            (self.fusion in FUSIONS, f"model.fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}"),
            (self.attention in ATTENTIONS, f"model.attention must be sdpa or eager, got {self.attention!r}"),
            (self.num_frames >= 1, f"model.num_frames must be at least 1, got {self.num_frames}"),
            (self.tau > 0, f"model.tau must be > 0, got {self.tau}"),
            (self.fusion_tau > 0, f"model.fusion_tau must be > 0, got {self.fusion_tau}"),
            (self.pn_lambda >= 0, f"model.pn_lambda must be >= 0, got {self.pn_lambda}"),
            (self.adapter_ratio > 0, f"model.adapter_ratio must be > 0, got {self.adapter_ratio}"),
            (0 <= self.drop_path < 1, f"model.drop_path must be in [0, 1), got {self.drop_path}"),
            (0 <= self.fusion_floor < 1, f"model.fusion_floor must be in [0, 1), got {self.fusion_floor}"),
            (self.fused_ce_weight >= 0, f"model.fused_ce_weight must be >= 0, got {self.fused_ce_weight}"),
            (self.desc_context_length >= 2, f"model.desc_context_length must be at least 2, got {self.desc_context_length}"),
            ("{}" in self.pos_template and "{}" in self.neg_template,
             "model.pos_template and model.neg_template must each hold '{}' where the class word goes"),
            (self.text_supervision in TEXT_SUPERVISIONS,
             f"model.text_supervision must be one of {', '.join(TEXT_SUPERVISIONS)}, got {self.text_supervision!r}"),
            (0 <= self.fusion_video_weight <= 1, f"model.fusion_video_weight must be in [0, 1], got {self.fusion_video_weight}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.modalities is not None:
            self._check_modalities(list(self.modalities))
        mods = self.fused_modalities()
        rules = [
            (self.fusion != "fixed" or "video" in mods, "model.fusion=fixed sets the video weight: it needs the video modality"),
            (not self.map_encoder_shares_video_adapters or ("video" in mods and self.video_adapters),
             "model.map_encoder_shares_video_adapters needs the video modality with its adapters (model.video_adapters=true)"),
            (not self.zero_shot or (self.text_supervision == "pos_neg" and self.modalities in (None, ["video"])),
             "model.zero_shot scores the video against PN prompts: it takes neither model.modalities nor "
             "model.text_supervision"),
        ]
        for ok, message in rules:
            if not ok:
                raise ConfigError(message)

    @staticmethod
    def _check_modalities(mods: list[str]) -> None:
        unknown = [m for m in mods if m not in MODALITIES]
        if unknown or not mods or len(set(mods)) != len(mods):
            raise ConfigError(f"model.modalities must be a non-empty list of distinct modalities out of "
                              f"{', '.join(MODALITIES)}, got {mods}")

    def fused_modalities(self) -> tuple[str, ...]:
        """The modalities scored and fused, in MODALITIES order: ``modalities`` when given, else the variant's
        (zero-shot scores the video alone)."""
        if self.zero_shot:
            return ("video",)
        chosen = VARIANTS[self.variant] if self.modalities is None else self.modalities
        return tuple(m for m in MODALITIES if m in chosen)

    def display_name(self) -> str:
        """The model as the paper writes it, e.g. 'FineCLIPER*†', with what a run changed from the variant."""
        name = "FineCLIPER (zero-shot)" if self.zero_shot else VARIANT_SYMBOLS[self.variant]
        if self.modalities is not None:
            name += f" [{'+'.join(self.fused_modalities())}]"
        return name

    def needs_maps(self) -> bool:
        """Parsing or landmark maps are read (face cache needed)."""
        return any(m in MAP_MODALITIES for m in self.fused_modalities())

    def needs_longclip(self) -> bool:
        return self.zero_shot or "description" in self.fused_modalities()

    def backbone_roles(self) -> tuple[str, ...]:
        """The frozen backbones this model is built on (and whose identity a checkpoint records)."""
        return ("clip", "longclip") if self.needs_longclip() else ("clip",)

    def prompts(self, classes: list[str] | None = None) -> tuple[list[str], list[str]]:
        """The positive and negative sentence of every class, e.g. '... of happiness.' / '... of no happiness.'"""
        classes = list(classes if classes is not None else self.classes)
        if not classes:
            raise ConfigError("model.classes is empty: set the class words (the dataset does this for you)")
        return [self.pos_template.format(c) for c in classes], [self.neg_template.format(c) for c in classes]
