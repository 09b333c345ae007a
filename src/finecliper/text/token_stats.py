"""Token-length statistics of texts under the CLIP BPE (77 for CLIP, 248 for Long-CLIP)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class TokenLengthStats:
    """Lengths count SOT and EOT, untruncated."""

    n: int
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    max: int
    over_77: int  # texts CLIP's 77-token context would cut
    over_248: int  # texts Long-CLIP's 248-token context would cut

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        return (f"{self.n} texts, tokens mean {self.mean:.1f}, median {self.median:.0f}, p90 {self.p90:.0f}, "
                f"p95 {self.p95:.0f}, p99 {self.p99:.0f}, max {self.max}; cut at 77: {self.over_77}, "
                f"cut at 248: {self.over_248}")


def token_lengths(texts: Sequence[str], tokenizer) -> np.ndarray:
    """(N,) untruncated lengths incl. SOT/EOT, with ``tokenizer.encode(text) -> ids`` (no SOT/EOT)."""
    return np.array([len(tokenizer.encode(t)) + 2 for t in texts], dtype=np.int64)


def length_stats(lengths: Sequence[int]) -> TokenLengthStats:
    a = np.asarray(lengths, dtype=np.int64)
    if a.size == 0:
        raise ValueError("no texts to measure")
    p = np.percentile(a, [50, 90, 95, 99])
    return TokenLengthStats(n=int(a.size), mean=float(a.mean()), median=float(p[0]), p90=float(p[1]),
                            p95=float(p[2]), p99=float(p[3]), max=int(a.max()), over_77=int((a > 77).sum()),
                            over_248=int((a > 248).sum()))


def mafw_caption_token_lengths(annotations_root: str | Path, fold: int = 1, splits: Sequence[str] = ("train", "test"),
                               tokenizer=None) -> tuple[TokenLengthStats, dict[str, int]]:
    """Stats over the English captions of MAFW's single-label with_caption fold (GBK files), and
    {clip_id: length}. ``tokenizer`` defaults to the CLIP BPE tokenizer."""
    from finecliper.data.splits import read_split

    if tokenizer is None:
        from finecliper.clip.tokenizer import load_tokenizer

        tokenizer = load_tokenizer()
    recs = [r for s in splits for r in read_split("mafw", annotations_root, fold, s, captions=True)]
    lengths = token_lengths([r.caption for r in recs], tokenizer)
    return length_stats(lengths), {r.clip_id: int(n) for r, n in zip(recs, lengths)}
