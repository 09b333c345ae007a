"""FineCLIPER: frozen CLIP towers, adapters, PN class prompts and adaptive fusion of modalities.

Modalities (a variant picks a subset, ``config.VARIANTS``):
- ``video``: frames (B,T,3,H,W) -> AIM-adapted ViT -> frozen CLIP ``proj`` (P_v);
- ``parsing`` / ``landmarks``: rendered maps (B,T,3,H,W) -> one middle encoder shared by both maps
  (own adapters, temporal embedding, ln_post) -> own projections P_p / P_l (init from CLIP ``proj``);
- ``description``: tokens (B,L<=248) -> Long-CLIP text tower + adapters -> trainable P_d.
Class prompts: K positive and K negative sentences -> CLIP text tower + adapters (A_p, A_n) -> frozen P_t.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from finecliper.model.config import ModelConfig
from finecliper.model.pn import contrastive_loss, fuse, fusion_weights, pn_scores, weighted_cross_entropy
from finecliper.model.text_encoder import TextEncoder
from finecliper.model.video_encoder import VideoEncoder

# The tunable set (reference §1.4, §10.6): everything our wrapper adds; the CLIP towers stay frozen.
MAP_MODALITIES = ("parsing", "landmarks")


@dataclass
class FineCLIPEROutput:
    logits: torch.Tensor  # (B, K) fused PN scores / tau
    scores: dict[str, torch.Tensor]  # modality -> (B, K) PN scores
    weights: torch.Tensor  # (B, M) fusion weights, columns in ``modalities`` order
    features: torch.Tensor  # (B, E) fused, normalised
    modalities: tuple[str, ...]
    loss: torch.Tensor | None = None
    modality_features: dict[str, torch.Tensor] = field(default_factory=dict)


def _identity_linear(d_in: int, d_out: int) -> nn.Linear:
    lin = nn.Linear(d_in, d_out, bias=False)
    with torch.no_grad():
        if d_in == d_out:
            lin.weight.copy_(torch.eye(d_in))
        else:
            nn.init.trunc_normal_(lin.weight, std=d_in ** -0.5)
    return lin


class FineCLIPER(nn.Module):
    def __init__(self, cfg: ModelConfig, clip: nn.Module, pos_tokens: torch.Tensor, neg_tokens: torch.Tensor,
                 longclip: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.modalities = cfg.modalities()
        if pos_tokens.shape != neg_tokens.shape:
            raise ValueError(f"positive {tuple(pos_tokens.shape)} and negative {tuple(neg_tokens.shape)} prompt tokens differ in shape")
        # frozen backbones, owned here (encoders hold plain references)
        self.clip = clip
        vision = clip.vision_model
        kw = dict(ratio=cfg.adapter_ratio, scale=cfg.adapter_scale, drop_path=cfg.drop_path, grad_checkpoint=cfg.grad_checkpoint)
        self.video = VideoEncoder(vision, cfg.num_frames, **kw)
        if not cfg.zero_shot:
            self.text = TextEncoder(clip.text_model, clip.text_projection, cfg.adapter_ratio,
                                    num_sets=1 if cfg.share_pn_adapters else 2)
        self.register_buffer("pos_tokens", pos_tokens.long(), persistent=False)
        self.register_buffer("neg_tokens", neg_tokens.long(), persistent=False)
        if "parsing" in self.modalities:
            shared = self.video.blocks if cfg.middle_shares_video_adapters else None
            self.middle = VideoEncoder(vision, cfg.num_frames, blocks=shared, **kw)
            self.proj_parsing = copy.deepcopy(clip.visual_projection)
            self.proj_landmarks = copy.deepcopy(clip.visual_projection)
        if cfg.needs_longclip():
            if longclip is None:
                raise ValueError(f"variant {cfg.variant!r} needs a Long-CLIP text tower (model.longclip)")
            # only the text half of Long-CLIP is used (reference §3.4)
            self.desc_tower = nn.ModuleDict({"text_model": longclip.text_model, "text_projection": longclip.text_projection})
            self.description = TextEncoder(longclip.text_model, longclip.text_projection, cfg.adapter_ratio, num_sets=1)
            self.proj_description = _identity_linear(longclip.text_projection.out_features, clip.text_projection.out_features)
        self._class_text_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.apply_freeze_policy()

    # ---------------------------------------------------------------- checkpoints
    def save_pretrained(self, directory):
        """Config + tunable weights (safetensors) + the frozen backbones' hashes; see ``model.checkpoint``."""
        from finecliper.model.checkpoint import save_checkpoint
        return save_checkpoint(self, directory)

    @classmethod
    def from_pretrained(cls, directory, clip=None, longclip=None) -> "FineCLIPER":
        """Load a checkpoint directory; refuses frozen backbones whose hash differs from the recorded one."""
        from finecliper.model.checkpoint import load_checkpoint
        return load_checkpoint(directory, clip=clip, longclip=longclip)

    # ---------------------------------------------------------------- freeze policy and counts
    def frozen_modules(self) -> list[nn.Module]:
        return [self.clip] + ([self.desc_tower] if hasattr(self, "desc_tower") else [])

    def apply_freeze_policy(self) -> None:
        """Only adapters, temporal embeddings, ln_post copies and new projections train."""
        for p in self.parameters():
            p.requires_grad_(True)
        for m in self.frozen_modules():
            m.requires_grad_(False)
            m.eval()
        if self.cfg.train_clip_projections:
            self.clip.visual_projection.requires_grad_(True)
            self.clip.text_projection.requires_grad_(True)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self.frozen_modules():
            m.eval()  # frozen towers never switch to training behaviour
        self._class_text_cache = None
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_counts(self) -> dict[str, dict[str, int]]:
        """Trainable and frozen parameters per top-level module (shared tensors counted once)."""
        seen: set[int] = set()
        counts: dict[str, dict[str, int]] = {}
        for name, child in self.named_children():
            c = {"trainable": 0, "frozen": 0}
            for p in child.parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                c["trainable" if p.requires_grad else "frozen"] += p.numel()
            counts[name] = c
        counts["total"] = {k: sum(v[k] for v in counts.values()) for k in ("trainable", "frozen")}
        return counts

    # ---------------------------------------------------------------- text side
    def set_prompt_tokens(self, pos_tokens: torch.Tensor, neg_tokens: torch.Tensor) -> None:
        """Swap the class prompts (e.g. open-vocabulary classes at inference)."""
        dev = self.pos_tokens.device
        self.pos_tokens, self.neg_tokens = pos_tokens.long().to(dev), neg_tokens.long().to(dev)
        self._class_text_cache = None

    def _encode_prompts(self, tokens_pos: torch.Tensor, tokens_neg: torch.Tensor, encoder: TextEncoder,
                        separate_sets: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if separate_sets:
            tp, tn = encoder(tokens_pos, 0), encoder(tokens_neg, 1)
        else:  # one pass over all 2K prompts
            tp, tn = encoder(torch.cat([tokens_pos, tokens_neg])).chunk(2)
        return F.normalize(tp, dim=-1), F.normalize(tn, dim=-1)

    def class_text_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(T_p, T_n), each (K, E) normalised; computed once per evaluation (cached while not training)."""
        if not self.training and self._class_text_cache is not None:
            return self._class_text_cache
        if self.cfg.zero_shot:  # the caption-trained description path reads the class prompts
            tp, tn = self.description(torch.cat([self.pos_tokens, self.neg_tokens])).chunk(2)
            feats = F.normalize(self.proj_description(tp), dim=-1), F.normalize(self.proj_description(tn), dim=-1)
        else:
            feats = self._encode_prompts(self.pos_tokens, self.neg_tokens, self.text, not self.cfg.share_pn_adapters)
        if not self.training:
            self._class_text_cache = tuple(f.detach() for f in feats)  # type: ignore[assignment]
        return feats

    def encode_description(self, tokens: torch.Tensor) -> torch.Tensor:
        """Description tokens (B, L) -> F_d (B, E), normalised."""
        return F.normalize(self.proj_description(self.description(tokens)), dim=-1)

    # ---------------------------------------------------------------- visual side
    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Normalised features per modality (B, E) and availability masks (B,) bool."""
        feats, available = {}, {}
        frames = batch["frames"]
        b = frames.shape[0]
        feats["video"] = F.normalize(self.clip.visual_projection(self.video.forward_features(frames)), dim=-1)
        if "parsing" in self.modalities:
            maps = torch.cat([batch["parsing_maps"], batch["landmark_maps"]])  # (2B, T, 3, H, W), one pass
            h_p, h_l = self.middle.forward_features(maps).chunk(2)
            feats["parsing"] = F.normalize(self.proj_parsing(h_p), dim=-1)
            feats["landmarks"] = F.normalize(self.proj_landmarks(h_l), dim=-1)
            if "face_valid" in batch:  # a clip with no face in any frame has no usable maps
                ok = batch["face_valid"].to(torch.bool).any(dim=1)
                available["parsing"] = available["landmarks"] = ok
        if "description" in self.modalities:
            feats["description"] = self.encode_description(batch["description_tokens"])
        for m in feats:
            available.setdefault(m, torch.ones(b, dtype=torch.bool, device=frames.device))
        return feats, available

    # ---------------------------------------------------------------- forward
    def forward(self, batch: dict[str, torch.Tensor]) -> FineCLIPEROutput:
        feats, available = self.encode(batch)
        tp, tn = self.class_text_features()
        mods = self.modalities
        scores = torch.stack([pn_scores(feats[m], tp, tn, self.cfg.pn_lambda) for m in mods])  # (M, B, K)
        weights = fusion_weights(scores, torch.stack([available[m] for m in mods]), self.cfg.fusion,
                                 tau=self.cfg.fusion_tau, floor=self.cfg.fusion_floor)
        fused = fuse(torch.stack([feats[m] for m in mods]), weights)
        fused_scores = pn_scores(fused, tp, tn, self.cfg.pn_lambda)
        out = FineCLIPEROutput(logits=fused_scores / self.cfg.tau, scores=dict(zip(mods, scores)), weights=weights,
                               features=fused, modalities=mods, modality_features=feats)
        if self.cfg.zero_shot and "description_tokens" in batch and self.training:
            out.loss = contrastive_loss(feats["video"], self.encode_description(batch["description_tokens"]), self.cfg.tau)
        elif "label" in batch:
            labels = batch["label"]
            loss = weighted_cross_entropy(scores, weights, labels, self.cfg.tau)
            if self.cfg.fused_ce_weight:
                loss = loss + self.cfg.fused_ce_weight * F.cross_entropy(out.logits, labels)
            out.loss = loss
        return out
