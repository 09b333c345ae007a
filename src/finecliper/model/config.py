"""Model configuration and the four named variants of FineCLIPER."""
from __future__ import annotations

from dataclasses import dataclass, field

# Modalities each variant fuses (paper Tab. 1): v = frames, p = parsing maps, l = landmark maps,
# d = fine-grained description.
VARIANTS: dict[str, tuple[str, ...]] = {
    "base": ("video",),
    "star": ("video", "parsing", "landmarks"),
    "dagger": ("video", "description"),
    "star_dagger": ("video", "parsing", "landmarks", "description"),
}
VARIANT_SYMBOLS = {"base": "FineCLIPER", "star": "FineCLIPER*", "dagger": "FineCLIPER†", "star_dagger": "FineCLIPER*†"}


@dataclass
class ModelConfig:
    variant: str = "base"
    clip: str | None = None  # CLIP checkpoint (OpenAI .pt, open_clip, HF dir, Long-CLIP); frozen backbone
    longclip: str | None = None  # Long-CLIP checkpoint for the description tower (variants with "description")
    allow_pickle: bool = False  # let TorchScript/pickled checkpoints execute code when loaded
    classes: list[str] = field(default_factory=list)  # class words, in label order
    pos_template: str = "A person with an expression of {}."
    neg_template: str = "A person with an expression of no {}."
    pn_lambda: float = 1.0  # S = cos(F, T_p) - lambda * cos(F, T_n)
    tau: float = 0.01  # logits = S / tau
    num_frames: int = 16
    adapter_ratio: float = 0.25
    adapter_scale: float = 0.5  # s, the MLP-parallel adapter's scale
    drop_path: float = 0.1
    share_pn_adapters: bool = False  # one adapter set for positive and negative prompts
    middle_shares_video_adapters: bool = False  # E_p/E_l reuse E_v's adapters instead of their own
    fusion: str = "max_norm"  # max_norm (Eq. 9 as resolved in reference §10.9) | softmax
    fusion_tau: float = 1.0  # temperature of the softmax fusion option
    fusion_floor: float = 0.0  # minimum weight per available modality (keeps every branch learning)
    fused_ce_weight: float = 0.0  # optional CE on the fused scores, off by default
    train_clip_projections: bool = False  # unfreeze P_v and P_t
    desc_context_length: int = 248
    attention: str = "sdpa"  # attention kernel of the frozen towers: sdpa | eager (transformers' implementations)
    grad_checkpoint: bool = False  # recompute adapted blocks in backward (saves GPU memory)
    # Zero-shot (paper Tab. 3): no labels; the video encoder and the description path (Long-CLIP + adapters
    # + P_d) are trained contrastively on clip-caption pairs, and class prompts go through that same path.
    zero_shot: bool = False

    def modalities(self) -> tuple[str, ...]:
        """The modalities scored and fused (zero-shot scores the video alone)."""
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; choose one of {', '.join(VARIANTS)}")
        return ("video",) if self.zero_shot else VARIANTS[self.variant]

    def needs_longclip(self) -> bool:
        return self.zero_shot or "description" in self.modalities()
