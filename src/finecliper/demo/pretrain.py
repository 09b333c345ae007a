"""Contrastive pre-training of the demo's tiny CLIP, the way CLIP got its own features: pictures ↔ text.

Why. FineCLIPER freezes a *pretrained* CLIP and trains only adapters. On a randomly initialised tiny CLIP
the frozen features carry almost nothing: the image features of any two clips are nearly parallel
(cosine 0.93–0.99) and so are the class prompts; the adapters cannot even fit the training clips, and the
video, parsing and landmark branches stay at chance (only the description branch, whose projection P_d
is a full trainable matrix on varied sentences, learns).

What. Before FineCLIPER, the tiny CLIP is trained once, contrastively (symmetric InfoNCE, CLIP's loss),
on the demo's *training identities only* (fold 1's train split; the held-out faces are never seen): each
clip's frames, its parsing maps and its landmark maps (image tower, frame by frame, averaged over the
clip's frames) against the clip's label-free description from the landmark describer (text tower). No
label is ever read. Clips whose descriptions are the same sentence count as positives of each other.
Each batch holds whole identities (all of a face's clips), so that a picture cannot be matched to its
description by *who* it shows, only by *what the face does*. The result is saved in the real formats
(OpenAI ``.pt``; a Long-CLIP ``.pt`` whose text tower starts from this CLIP's, its positions stretched to
248 as Long-CLIP does), then frozen by FineCLIPER as usual.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPModel

from finecliper.data.dataset import ClipDataset, collate_clips

VIEWS = ("frames", "parsing_maps", "landmark_maps")  # image-tower inputs, each paired with the description
CLIP_CONTEXT = 77  # the descriptions as the tiny CLIP's text tower reads them (longer ones keep EOT last)


@dataclass
class PretrainResult:
    epochs: int
    clips: int
    identities: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean loss per epoch (summed over the views)


def _compact(item: dict) -> dict:
    """What pre-training reads of a dataset item, its images in half precision (half the memory)."""
    return {"description_tokens": item["description_tokens"], **{v: item[v].half() for v in VIEWS}}


def identity_batches(identities: Sequence[str], per_batch: int, rng: np.random.Generator) -> list[list[int]]:
    """Indices grouped by identity, identities shuffled, ``per_batch`` whole identities per batch."""
    names = sorted(set(identities))
    order = rng.permutation(len(names))
    groups = [[i for i, n in enumerate(identities) if n == names[j]] for j in order]
    return [sum(groups[k:k + per_batch], []) for k in range(0, len(groups), per_batch)]


def _pooled(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 4.x / 5.x


def frame_embeddings(model: CLIPModel, views: torch.Tensor) -> torch.Tensor:
    """views (B, T, 3, S, S) -> (B, T, E): each frame's normalised image embedding."""
    b, t = views.shape[:2]
    return F.normalize(_pooled(model.get_image_features(pixel_values=views.flatten(0, 1))), dim=-1).view(b, t, -1)


def clip_image_features(model: CLIPModel, views: torch.Tensor) -> torch.Tensor:
    """views (B, T, 3, S, S) -> (B, E): the mean over frames of the normalised image embeddings, normalised."""
    return F.normalize(frame_embeddings(model, views).mean(1), dim=-1)


def contrastive_loss(images: torch.Tensor, texts: torch.Tensor, scale: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric cross-entropy; ``same`` (B, B) bool marks the pairs that are positives of each other
    (the diagonal, and clips with the same description), sharing the target mass evenly."""
    logits = scale * images @ texts.t()
    target = same.float() / same.sum(1, keepdim=True)
    return 0.5 * (-(target * logits.log_softmax(1)).sum(1).mean() - (target * logits.t().log_softmax(1)).sum(1).mean())


def pretrain_clip(model: CLIPModel, dataset: ClipDataset, identities: Sequence[str], epochs: int, lr: float = 1e-3,
                  identities_per_batch: int = 4, seed: int = 0, motion_weight: float = 0.0, align_weight: float = 0.0,
                  progress: Callable[[int, int, float], None] | None = None) -> PretrainResult:
    """Train every weight of ``model`` in place on ``dataset`` (items with ``description_tokens`` and the maps),
    ``identities[i]`` being the face of item i; returns the per-epoch losses. ``progress(epoch, epochs, loss)``.

    Each clip is read once (its frames as the dataset samples them; build it without augmentation)."""
    if len(identities) != len(dataset):
        raise ValueError(f"{len(identities)} identities for {len(dataset)} clips")
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 4242])
    items = [_compact(dataset[i]) for i in range(len(dataset))]  # read once: the same frames every epoch
    model.train()
    model.requires_grad_(True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * len(identity_batches(identities, identities_per_batch, rng))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=max(steps, 1), pct_start=0.1)
    result = PretrainResult(epochs, len(dataset), len(set(identities)), 0.0)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        total, n = 0.0, 0
        for indices in identity_batches(identities, identities_per_batch, rng):
            batch = collate_clips([items[i] for i in indices])
            batch = {k: v.float() if k in VIEWS else v for k, v in batch.items()}
            tokens = batch["description_tokens"]  # (B, L)
            same = (tokens[:, None] == tokens[None]).all(-1)  # identical descriptions are positives of each other
            texts = F.normalize(_pooled(model.get_text_features(input_ids=tokens)), dim=-1)
            scale = model.logit_scale.exp().clamp(max=100)
            loss = 0
            per_view = {}
            for v in VIEWS:
                f = per_view[v] = frame_embeddings(model, batch[v])  # (B, T, E)
                loss = loss + contrastive_loss(F.normalize(f.mean(1), dim=-1), texts, scale, same)
                if motion_weight:
                    half = f.shape[1] // 2
                    motion = F.normalize(f[:, half:].mean(1) - f[:, :half].mean(1), dim=-1, eps=1e-6)
                    loss = loss + motion_weight * contrastive_loss(motion, texts, scale, same)
            if align_weight:  # each frame against its own landmark map, among every frame of the batch
                a, b = per_view["frames"].flatten(0, 1), per_view["landmark_maps"].flatten(0, 1)
                loss = loss + align_weight * contrastive_loss(a, b, scale, torch.eye(len(a), dtype=torch.bool))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, n = total + float(loss.detach()) * len(tokens), n + len(tokens)
        result.losses.append(round(total / max(n, 1), 4))
        if progress:
            progress(epoch + 1, epochs, result.losses[-1])
    result.seconds = round(time.perf_counter() - t0, 2)
    model.eval()
    return result
