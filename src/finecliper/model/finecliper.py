"""FineCLIPER: frozen CLIP towers, adapters, PN class prompts and adaptive fusion of modalities.

Modalities (a variant picks a subset, ``config.VARIANTS``):
- ``video``: frames (B,T,3,H,W) -> ``video_encoder`` (AIM-adapted ViT) -> frozen CLIP ``visual_projection`` (P_v);
- ``parsing`` / ``landmarks``: rendered face maps (B,T,3,H,W) -> one ``map_encoder`` shared by both maps
  (the paper's "middle-level" encoder: own adapters, temporal embedding, ln_post) -> own projections
  ``parsing_projection`` / ``landmarks_projection`` (P_p / P_l, initialised from CLIP's ``visual_projection``);
- ``description``: tokens (B,L<=248) -> ``description_encoder`` (frozen Long-CLIP text tower + adapters)
  -> trainable ``description_projection`` (P_d).
Class prompts: K positive and K negative sentences -> ``prompt_encoder`` (CLIP text tower + adapter sets
A_p, A_n) -> frozen ``text_projection`` (P_t).

Ablation knobs (paper Tab. 4-6, appendix Fig. 8; ``ModelConfig``): ``modalities`` picks any subset of the
four (an encoder that no chosen modality reads is not built); ``video_adapters=false`` reads the frames
with the frozen CLIP image tower as is (``FrameEncoder``); ``text_supervision`` = ``pos`` builds one
prompt adapter set and scores ``cos(F, T_p)``, ``none`` replaces the prompts by a ``class_head``;
``fusion=fixed`` gives the video the weight ``fusion_video_weight``.

The model knows its tokenizers (class prompts and descriptions are tokenised the way its towers were
trained) and the identity (sha256, format, file) of the checkpoint files its frozen towers came from:
a checkpoint records them, and loading one on other backbones is refused (``model.factory``).
It is a ``huggingface_hub.ModelHubMixin``: ``from_pretrained`` takes a folder or a Hub repo id (with
``revision``, ``cache_dir``, ``local_files_only``, ...), ``push_to_hub`` uploads it (``model.hub``).
"""
from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from huggingface_hub import ModelHubMixin
from torch import nn

from finecliper.clip.tokenizer import truncate_to_longest
from finecliper.model import factory, hub
from finecliper.model.config import MAP_MODALITIES, ModelConfig
from finecliper.model.pn import contrastive_loss, fuse, fusion_weights, pn_scores, weighted_cross_entropy
from finecliper.model.text_encoder import TextEncoder
from finecliper.model.video_encoder import FrameEncoder, VideoEncoder

# ``tokenizer(texts, context_length=L) -> LongTensor (N, L)``, as ``finecliper.clip.ClipTokenizer``
Tokenizer = Callable[..., torch.Tensor]
MAP_INPUTS = {"parsing": "parsing_maps", "landmarks": "landmark_maps"}  # batch key of each map modality


@dataclass
class FineCLIPEROutput:
    logits: torch.Tensor  # (B, K) fused PN scores / tau
    scores: dict[str, torch.Tensor]  # modality -> (B, K) PN scores
    weights: torch.Tensor  # (B, M) fusion weights, columns in ``modalities`` order
    features: torch.Tensor  # (B, E) fused, normalised
    modalities: tuple[str, ...]
    loss: torch.Tensor | None = None
    modality_features: dict[str, torch.Tensor] = field(default_factory=dict)


class ClassHead(nn.Module):
    """Class supervision without text (``text_supervision=none``): one trainable joint-space vector per class,
    scored by cosine like the prompts it replaces (a linear probe on the normalised feature)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=dim ** -0.5)

    def forward(self) -> torch.Tensor:
        return F.normalize(self.weight, dim=-1)  # (K, E)


def _identity_linear(d_in: int, d_out: int) -> nn.Linear:
    lin = nn.Linear(d_in, d_out, bias=False)
    with torch.no_grad():
        if d_in == d_out:
            lin.weight.copy_(torch.eye(d_in))
        else:
            nn.init.trunc_normal_(lin.weight, std=d_in ** -0.5)
    return lin


class FineCLIPER(nn.Module, ModelHubMixin, **hub.MIXIN_INFO):
    def __init__(self, cfg: ModelConfig, clip: nn.Module, longclip: nn.Module | None = None, *,
                 tokenizer: Tokenizer, longclip_tokenizer: Tokenizer | None = None,
                 backbones: Mapping[str, Mapping[str, str]] | None = None):
        """``clip``, ``longclip``: frozen transformers ``CLIPModel``s (only Long-CLIP's text half is used).

        ``tokenizer``/``longclip_tokenizer``: each backbone's own tokenizer (Long-CLIP's defaults to CLIP's).
        ``backbones``: {"clip": {"sha256", "format", "file"}, "longclip": {...}} of the checkpoint files
        the towers were loaded from (``factory.backbone_identity``); without them the model cannot be saved.
        Build from paths or loaded backbones with :meth:`from_config`.
        """
        super().__init__()
        self._hub_mixin_config = None  # the mixin's config.json is not ours: config.yaml says it (model.factory)
        self.cfg = cfg
        self.modalities = cfg.fused_modalities()
        self.backbone_identities = {k: dict(v) for k, v in (backbones or {}).items()}
        self.tokenizer = tokenizer
        self.longclip_tokenizer = longclip_tokenizer or tokenizer
        # frozen backbones, owned here (encoders hold plain references)
        self.clip = clip
        vision = clip.vision_model
        kw = dict(ratio=cfg.adapter_ratio, scale=cfg.adapter_scale, drop_path=cfg.drop_path, grad_checkpoint=cfg.grad_checkpoint)
        if "video" in self.modalities:
            self.video_encoder = VideoEncoder(vision, cfg.num_frames, **kw) if cfg.video_adapters \
                else FrameEncoder(vision, cfg.num_frames)
        if cfg.text_supervision == "none":
            self.class_head = ClassHead(len(cfg.classes), clip.text_projection.out_features)
        elif not cfg.zero_shot:
            one_set = cfg.share_pn_adapters or cfg.text_supervision == "pos"
            self.prompt_encoder = TextEncoder(clip.text_model, clip.text_projection, cfg.adapter_ratio,
                                              num_sets=1 if one_set else 2)
        self.map_modalities = tuple(m for m in MAP_MODALITIES if m in self.modalities)
        if self.map_modalities:
            shared = self.video_encoder.blocks if cfg.map_encoder_shares_video_adapters else None
            self.map_encoder = VideoEncoder(vision, cfg.num_frames, blocks=shared, **kw)
            for m in self.map_modalities:  # parsing_projection (P_p), landmarks_projection (P_l)
                setattr(self, f"{m}_projection", copy.deepcopy(clip.visual_projection))
        if cfg.needs_longclip():
            if longclip is None:
                raise ValueError(f"variant {cfg.variant!r} needs a Long-CLIP text tower (model.longclip)")
            # only the text half of Long-CLIP is used (reference §3.4)
            self.longclip_text = nn.ModuleDict({"text_model": longclip.text_model, "text_projection": longclip.text_projection})
            self.description_encoder = TextEncoder(longclip.text_model, longclip.text_projection, cfg.adapter_ratio, num_sets=1)
            self.description_projection = _identity_linear(longclip.text_projection.out_features,
                                                           clip.text_projection.out_features)
        self._class_text_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self.set_classes(cfg.classes)
        self.apply_freeze_policy()

    # ---------------------------------------------------------------- building, checkpoints
    @classmethod
    def from_config(cls, cfg: ModelConfig, clip=None, longclip=None) -> "FineCLIPER":
        """Build any variant; ``clip``/``longclip`` (a path or a loaded ``ClipBackbone``) default to cfg's paths."""
        return factory.build(cls, cfg, clip, longclip)

    # ModelHubMixin's public methods are overridden, not inherited: its from_pretrained reads a config.json
    # (ours is config.yaml) and its save_pretrained writes one plus a card into every training checkpoint.
    # The names, keywords and Hub behaviour (cache, revision, offline mode, upload) stay the mixin's.
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, clip=None, longclip=None, *,
                        revision: str | None = None, cache_dir: str | Path | None = None, force_download: bool = False,
                        local_files_only: bool = False, token: str | bool | None = None) -> "FineCLIPER":
        """Load a checkpoint folder or Hub repo id (``user/name``, read from the HF cache when offline).

        ``clip``/``longclip``: the frozen backbone files (default: found by their recorded sha256 and file
        name, ``factory.find_backbone``); one whose hash differs from the recorded one is refused.
        """
        return cls._from_pretrained(model_id=str(pretrained_model_name_or_path), revision=revision, cache_dir=cache_dir,
                                    force_download=force_download, local_files_only=local_files_only, token=token,
                                    clip=clip, longclip=longclip)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision: str | None, cache_dir: str | Path | None,
                         force_download: bool, local_files_only: bool, token: str | bool | None,
                         clip=None, longclip=None, **_) -> "FineCLIPER":
        directory = hub.checkpoint_dir(model_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                       force_download=force_download, token=token)
        return factory.load(cls, directory, clip, longclip)

    def save_pretrained(self, save_directory: str | Path, *, repo_id: str | None = None, push_to_hub: bool = False,
                        **push_to_hub_kwargs) -> Path:
        """Config + tunable weights (safetensors) + the frozen backbones' identities; see ``model.factory``.
        ``push_to_hub=True`` then uploads it to ``repo_id`` (default: the folder's name)."""
        directory = factory.save(self, save_directory)
        if push_to_hub:
            hub.push(directory, repo_id or Path(save_directory).name, **push_to_hub_kwargs)
        return directory

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    branch: str | None = None, commit_message: str | None = None, create_pr: bool | None = None) -> str:
        """Upload config, tunable weights, backbone hashes and a model card (``model.hub``); returns the commit URL."""
        with tempfile.TemporaryDirectory(prefix="finecliper-model-") as tmp:
            directory = factory.save(self, Path(tmp) / "model")
            return hub.push(directory, repo_id, private=private, token=token, branch=branch,
                            commit_message=commit_message, create_pr=create_pr)

    # ---------------------------------------------------------------- tokenizers and class prompts
    def tokenize_prompts(self, texts: Sequence[str]) -> torch.Tensor:
        """Class prompts -> (N, L) tokens of the tower that reads them (Long-CLIP's in zero-shot)."""
        if self.cfg.zero_shot:
            return self.longclip_tokenizer(list(texts), context_length=self.description_encoder.context_length)
        return self.tokenizer(list(texts), context_length=self.prompt_encoder.context_length)

    def tokenize_description(self, texts: Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """Descriptions -> (N, context_length or ``cfg.desc_context_length``) Long-CLIP tokens."""
        return self.longclip_tokenizer(list(texts), context_length=context_length or self.cfg.desc_context_length)

    def set_classes(self, classes: Sequence[str]) -> None:
        """Score against the PN prompts of these class words (``cfg.classes`` stays what was trained)."""
        if self.cfg.text_supervision == "none":  # one trained head row per class, no prompt to read
            if len(classes) != len(self.cfg.classes):
                raise ValueError(f"this model was trained without text supervision (model.text_supervision=none): "
                                 f"its head has one row per trained class ({', '.join(self.cfg.classes)}) and cannot "
                                 f"score {len(classes)} other classes")
            self.classes = list(classes)
            return
        pos, neg = self.cfg.prompts(list(classes))
        dev = self.clip.logit_scale.device  # where the model lives (the meta device when only counting)
        with torch.device("cpu"):  # token ids are data, even when the model is built on the meta device
            tokens = truncate_to_longest(self.tokenize_prompts(pos + neg).long()).to(dev)  # one length for both
        self.register_buffer("pos_tokens", tokens[:len(pos)], persistent=False)
        self.register_buffer("neg_tokens", tokens[len(pos):], persistent=False)
        self.classes = list(classes)
        self._class_text_cache = None

    # ---------------------------------------------------------------- freeze policy and counts
    def frozen_modules(self) -> list[nn.Module]:
        return [self.clip] + ([self.longclip_text] if hasattr(self, "longclip_text") else [])

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
    def _encode_prompts(self, tokens_pos: torch.Tensor, tokens_neg: torch.Tensor, encoder: TextEncoder,
                        separate_sets: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if separate_sets:
            tp, tn = encoder(tokens_pos, 0), encoder(tokens_neg, 1)
        else:  # one pass over all 2K prompts
            tp, tn = encoder(torch.cat([tokens_pos, tokens_neg])).chunk(2)
        return F.normalize(tp, dim=-1), F.normalize(tn, dim=-1)

    def class_text_features(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(T_p, T_n), each (K, E) normalised, T_n None without negatives (``text_supervision`` pos or none);
        computed once per evaluation (cached while not training)."""
        if not self.training and self._class_text_cache is not None:
            return self._class_text_cache
        supervision = self.cfg.text_supervision
        if supervision == "none":  # the head's rows stand where the prompts would
            feats = self.class_head(), None
        elif self.cfg.zero_shot:  # the caption-trained description path reads the class prompts
            tp, tn = self.description_encoder(torch.cat([self.pos_tokens, self.neg_tokens])).chunk(2)
            feats = F.normalize(self.description_projection(tp), dim=-1), F.normalize(self.description_projection(tn), dim=-1)
        elif supervision == "pos":
            feats = F.normalize(self.prompt_encoder(self.pos_tokens), dim=-1), None
        else:
            feats = self._encode_prompts(self.pos_tokens, self.neg_tokens, self.prompt_encoder, not self.cfg.share_pn_adapters)
        if not self.training:
            self._class_text_cache = tuple(None if f is None else f.detach() for f in feats)  # type: ignore[assignment]
        return feats

    def encode_description(self, tokens: torch.Tensor) -> torch.Tensor:
        """Description tokens (B, L) -> F_d (B, E), normalised."""
        return F.normalize(self.description_projection(self.description_encoder(tokens)), dim=-1)

    # ---------------------------------------------------------------- visual side
    def encode(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Normalised features per modality (B, E) and availability masks (B,) bool."""
        feats, available = {}, {}
        frames = batch["frames"]
        b = frames.shape[0]
        if "video" in self.modalities:
            feats["video"] = F.normalize(self.clip.visual_projection(self.video_encoder.forward_features(frames)), dim=-1)
        if self.map_modalities:
            maps = torch.cat([batch[MAP_INPUTS[m]] for m in self.map_modalities])  # (n·B, T, 3, H, W), one pass
            has_face = batch["face_valid"].to(torch.bool).any(dim=1) if "face_valid" in batch else None  # (B,)
            for m, h in zip(self.map_modalities, self.map_encoder.forward_features(maps).chunk(len(self.map_modalities))):
                feats[m] = F.normalize(getattr(self, f"{m}_projection")(h), dim=-1)
                if has_face is not None:  # a clip with no face in any frame has no usable maps
                    available[m] = has_face
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
                                 tau=self.cfg.fusion_tau, floor=self.cfg.fusion_floor,
                                 fixed_index=mods.index("video") if "video" in mods else 0,
                                 fixed_weight=self.cfg.fusion_video_weight)
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
