"""CLIP BPE tokenizer with OpenAI ``clip.tokenize`` output, on transformers' fast ``CLIPTokenizer``.

Output: LongTensor (N, context_length) = SOT 49406, BPE ids, EOT 49407, then zeros; a text that is too
long is cut and EOT put in the last slot (OpenAI's ``truncate=True``). Ids equal OpenAI's SimpleTokenizer:
the text is cleaned exactly as OpenAI does (ftfy, twice html-unescape, whitespace collapse, Python
``lower``) before the HF backend sees it, because HF's own normaliser (NFC + lowercase) differs on
mojibake, HTML entities and some Unicode case folds.
"""
from __future__ import annotations

import functools
import gzip
import html
from pathlib import Path
from typing import Sequence

import ftfy
import regex
import torch

from finecliper.clip.convert import EOT_TOKEN_ID, SOT_TOKEN_ID
from finecliper.io import sha256_file

BPE_FILENAME = "bpe_simple_vocab_16e6.txt.gz"
BPE_PATH = Path(__file__).resolve().parent / "vocab" / BPE_FILENAME
BPE_SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
_N_MERGES = 49152 - 256 - 2  # OpenAI uses lines 1..48894 of the BPE file
_HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")


class TokenizerError(ValueError):
    """No usable CLIP vocabulary."""


def clean_text(text: str) -> str:
    """OpenAI's ``whitespace_clean(basic_clean(text)).lower()``."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


def default_bpe_path() -> Path:
    """The BPE vocabulary finecliper ships (OpenAI CLIP's, MIT: see ``clip/vocab/NOTICE``), checked by hash."""
    return _checked_vocabulary(BPE_PATH, BPE_SHA256)


@functools.lru_cache(maxsize=2)  # hashing 1.3 MB once per process is enough (a refusal is not cached)
def _checked_vocabulary(path: Path, sha256: str) -> Path:
    if sha256_file(path) != sha256:
        raise TokenizerError(f"{path}: not the CLIP vocabulary finecliper shipped (sha256 differs); reinstall finecliper")
    return path


@functools.lru_cache(maxsize=4)
def _bpe_vocab(path: str, mtime_ns: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """vocab (49408 entries) + merges of a ``bpe_simple_vocab_16e6.txt.gz``, built as OpenAI's SimpleTokenizer."""
    try:
        lines = gzip.open(path).read().decode("utf-8").split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: not a readable gzip BPE merges file ({e})") from e
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # GPT-2/CLIP byte -> char table

    merges = [tuple(line.split()) for line in lines[1:_N_MERGES + 1]]
    if len(merges) != _N_MERGES or any(len(m) != 2 for m in merges):
        raise TokenizerError(f"{path}: expected {_N_MERGES} BPE merges 'a b' after the header line")
    base = list(bytes_to_unicode().values())
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges  # type: ignore[return-value]


class ClipTokenizer:
    """OpenAI-compatible CLIP tokenizer. ``tok(texts) -> LongTensor (N, context_length)``."""

    def __init__(self, hf_tokenizer, context_length: int = 77, source: Path | None = None):
        self.hf = hf_tokenizer  # transformers CLIPTokenizer (fast, tokenizers-backed)
        self.context_length = context_length
        self.source = source
        self.sot_token_id = SOT_TOKEN_ID
        self.eot_token_id = EOT_TOKEN_ID
        vocab = self.hf.get_vocab()
        if vocab.get("<|startoftext|>") != SOT_TOKEN_ID or vocab.get("<|endoftext|>") != EOT_TOKEN_ID:
            raise TokenizerError(
                f"{source}: not the CLIP vocabulary (<|startoftext|>/<|endoftext|> are not {SOT_TOKEN_ID}/{EOT_TOKEN_ID})"
            )
        self.vocab_size = len(vocab)

    @classmethod
    def from_bpe(cls, path: str | Path | None = None, context_length: int = 77) -> "ClipTokenizer":
        from transformers import CLIPTokenizer

        path = Path(path) if path is not None else default_bpe_path()
        if not path.is_file():
            raise TokenizerError(f"CLIP BPE file not found: {path}")
        vocab, merges = _bpe_vocab(str(path.resolve()), path.stat().st_mtime_ns)
        return cls(CLIPTokenizer(vocab=vocab, merges=merges), context_length, path)

    @classmethod
    def from_pretrained(cls, directory: str | Path, context_length: int = 77) -> "ClipTokenizer":
        from transformers import CLIPTokenizer

        directory = Path(directory)
        if not any((directory / f).is_file() for f in _HF_TOKENIZER_FILES):
            raise TokenizerError(f"{directory}: no tokenizer.json or vocab.json + merges.txt")
        try:
            hf = CLIPTokenizer.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError) as e:
            raise TokenizerError(f"{directory}: cannot read its CLIP tokenizer files ({e})") from e
        return cls(hf, context_length, directory)

    def encode(self, text: str) -> list[int]:
        """BPE ids of one text, without SOT/EOT."""
        return self.hf.backend_tokenizer.encode(clean_text(text), add_special_tokens=False).ids

    def __call__(
        self, texts: str | Sequence[str], context_length: int | None = None, truncate: bool = True
    ) -> torch.Tensor:
        """-> LongTensor (N, context_length): SOT, ids, EOT, zero padding."""
        if isinstance(texts, str):
            texts = [texts]
        L = context_length or self.context_length
        enc = self.hf.backend_tokenizer.encode_batch([clean_text(t) for t in texts], add_special_tokens=False)
        out = torch.zeros(len(texts), L, dtype=torch.long)
        for i, e in enumerate(enc):
            ids = [self.sot_token_id, *e.ids, self.eot_token_id]
            if len(ids) > L:
                if not truncate:
                    raise ValueError(f"text {i} has {len(ids)} tokens, more than the context length {L}: {texts[i][:60]!r}")
                ids = ids[:L]
                ids[-1] = self.eot_token_id  # OpenAI truncate=True: EOT stays in the last slot
            out[i, : len(ids)] = torch.tensor(ids)
        return out


def load_tokenizer(source: str | Path | None = None, context_length: int = 77) -> ClipTokenizer:
    """An HF CLIP directory with tokenizer files, a BPE ``.txt.gz`` file, or None (the shipped BPE)."""
    if source is None:
        return ClipTokenizer.from_bpe(None, context_length)
    source = Path(source)
    if source.is_dir():
        return ClipTokenizer.from_pretrained(source, context_length)
    return ClipTokenizer.from_bpe(source, context_length)


def truncate_to_longest(tokens: torch.Tensor) -> torch.Tensor:
    """Cut a (N, L) token batch after its last EOT (EOT is the largest id, so ``argmax`` finds it).

    Under the causal mask tokens after EOT cannot reach the pooled EOT state, so this changes nothing
    but the cost (a 35-token description padded to 248 costs 7x more).
    """
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be (B, L), got {tuple(tokens.shape)}")
    if tokens.shape[0] == 0:
        return tokens
    longest = int(tokens.argmax(dim=-1).max()) + 1
    return tokens[:, :longest]
