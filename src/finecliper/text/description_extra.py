"""Description tokens as a dataset extra (batches are cut after their longest text by ``collate_clips``).

``DescriptionExtra`` implements ``finecliper.data.dataset.ClipExtra``: each item gets
``description_tokens`` (context_length,) long, tokenised once up front (SOT, BPE ids, EOT, zeros;
too-long texts keep EOT in the last slot). A description is the same for every sampled frame set
and augmentation, so ``indices``/``geom`` are ignored.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from finecliper.text.desc_cache import load_descriptions

LONG_CONTEXT = 248  # Long-CLIP text context (reference §3.3)


class DescriptionExtra:
    remedy = "run `finecliper describe` over these clips into the same file (it resumes)"

    def __init__(self, descriptions: Mapping[str, str] | str | Path, tokenizer, context_length: int = LONG_CONTEXT,
                 missing: str = "error", source: str | None = None):
        """``descriptions``: {clip_id: text} or a description cache path; ``tokenizer(texts, context_length)``
        -> LongTensor (N, L). ``missing``: "error" (default) or "empty" (an empty description: SOT EOT).
        ``source``: where a dict of texts came from (for messages)."""
        if missing not in ("error", "empty"):
            raise ValueError(f"missing must be 'error' or 'empty', got {missing!r}")
        self.source = str(descriptions) if isinstance(descriptions, (str, Path)) else (source or "<dict>")
        texts = load_descriptions(descriptions) if isinstance(descriptions, (str, Path)) else dict(descriptions)
        self.context_length = context_length
        self.missing = missing
        ids = list(texts)
        tokens = tokenizer([texts[i] for i in ids], context_length=context_length) if ids else \
            torch.zeros(0, context_length, dtype=torch.long)
        if tokens.shape != (len(ids), context_length):
            raise ValueError(f"tokenizer returned {tuple(tokens.shape)}, expected ({len(ids)}, {context_length})")
        self.tokens = tokens  # (N, L) long
        self.row = {cid: i for i, cid in enumerate(ids)}
        self.empty = tokenizer([""], context_length=context_length)[0]

    def __len__(self) -> int:
        return len(self.row)

    def check(self, records) -> list[str]:
        """Clips without a description (nothing when missing='empty')."""
        if self.missing == "empty":
            return []
        return [f"{r.clip_id}: no description in {self.source}" for r in records if r.clip_id not in self.row]

    def load(self, record: Any, indices: np.ndarray, geom: Any, src_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        i = self.row.get(record.clip_id)
        if i is None:
            if self.missing == "empty":
                return {"description_tokens": self.empty.clone()}
            raise KeyError(f"no description for clip {record.clip_id!r} in {self.source}; run `finecliper describe` "
                           "for this split, or set missing='empty'")
        return {"description_tokens": self.tokens[i].clone()}  # (L,) long
