"""The description cache: one JSONL file per dataset and backend, one line per clip.

Line 1 is a header that says what built the cache:
    {"format": "finecliper-descriptions", "format_version": 1, "dataset", "backend", "model_hash",
     "prompt_hash", "refine_hash", "leaks_label", "finecliper_version", "created", "metadata"}
Every further line is one clip:
    {"clip_id", "text" (refined), "raw", "removed" [{"text", "reason"}], "backend", "model_hash",
     "prompt_hash", "leaks_label", "time", "version", ...backend extras such as "motions"}

Appends are atomic per line: the complete line is written with one ``write`` on an append-mode file,
then flushed and fsync'ed. A crash can only leave a truncated *last* line; readers ignore it with a
warning and a writer cuts it off before appending. Re-opening resumes: clip ids already present are
skipped by the caller (``cache.done``). A cache built by another backend, model, prompt, refinement
or label setting is never reused silently: opening it raises :class:`DescriptionCacheError`.
"""
from __future__ import annotations

import json
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from finecliper import __version__
from finecliper.io import atomic_write

CACHE_FORMAT = "finecliper-descriptions"
CACHE_FORMAT_VERSION = 1
IDENTITY_KEYS = ("dataset", "backend", "model_hash", "prompt_hash", "refine_hash", "leaks_label")


class DescriptionCacheError(ValueError):
    """A description cache that is unreadable or was built by something else."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _scan(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], int, bool]:
    """(header, entries, byte length of the valid part, whether a truncated last line was found)."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    # a file that ends with "\n" splits into [..., b""]; anything else ends in an incomplete line
    complete, tail = lines[:-1], lines[-1]
    if not complete:
        raise DescriptionCacheError(f"{path}: no header line; this is not a finecliper description cache "
                                    "(delete it, or pick another --out)")
    try:
        header = json.loads(complete[0])
    except json.JSONDecodeError as e:
        raise DescriptionCacheError(f"{path}:1: header is not JSON ({e}); delete the file to rebuild") from e
    if not isinstance(header, dict) or header.get("format") != CACHE_FORMAT:
        raise DescriptionCacheError(f"{path}: not a finecliper description cache (format "
                                    f"{header.get('format') if isinstance(header, dict) else None!r})")
    if header.get("format_version") != CACHE_FORMAT_VERSION:
        raise DescriptionCacheError(f"{path}: cache format v{header.get('format_version')}, this finecliper "
                                    f"reads v{CACHE_FORMAT_VERSION}; rebuild it with `finecliper describe`")
    entries = []
    valid_len = len(complete[0]) + 1
    truncated = bool(tail.strip())
    for n, line in enumerate(complete[1:], start=2):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or not isinstance(entry.get("clip_id"), str) or "text" not in entry:
                raise ValueError("not a clip entry with clip_id and text")
        except ValueError as e:
            if n == len(complete) and not tail:
                truncated = True  # a broken *final* line is what an interrupted write leaves: skip it
                break
            raise DescriptionCacheError(f"{path}:{n}: corrupt line ({e}); the cache is damaged in the "
                                        "middle, delete it to rebuild") from e
        entries.append(entry)
        valid_len += len(line) + 1
    return header, entries, valid_len, truncated


def read_cache(path: str | Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(header, {clip_id: entry}). A truncated last line is ignored with a warning."""
    path = Path(path)
    if not path.is_file():
        raise DescriptionCacheError(f"description cache not found: {path}. Build it with `finecliper describe`")
    header, entries, _, truncated = _scan(path)
    if truncated:
        warnings.warn(f"{path}: ignoring a truncated last line (an interrupted write)", stacklevel=2)
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        out.setdefault(e["clip_id"], e)  # the first description of a clip wins
    return header, out


def load_descriptions(path: str | Path) -> dict[str, str]:
    """{clip_id: refined text} of a cache file."""
    _, entries = read_cache(path)
    return {k: e["text"] for k, e in entries.items()}


class DescriptionCache:
    """Append-only writer. ``identity`` holds :data:`IDENTITY_KEYS`; a mismatch with an existing file raises."""

    def __init__(self, path: str | Path, identity: dict[str, Any], metadata: dict[str, Any] | None = None):
        missing = [k for k in IDENTITY_KEYS if k not in identity]
        if missing:
            raise ValueError(f"cache identity lacks {missing}")
        self.path = Path(path)
        self.identity = {k: identity[k] for k in IDENTITY_KEYS}
        self.version = __version__
        if not self.path.exists():
            header = {"format": CACHE_FORMAT, "format_version": CACHE_FORMAT_VERSION, **self.identity,
                      "finecliper_version": __version__, "created": _now(), "metadata": metadata or {}}
            with atomic_write(self.path, "w") as f:
                f.write(json.dumps(header, ensure_ascii=False) + "\n")
            self.header, self.entries = header, {}
            return
        header, entries, valid_len, truncated = _scan(self.path)
        diffs = [f"{k}: cache has {header.get(k)!r}, now {self.identity[k]!r}"
                 for k in IDENTITY_KEYS if header.get(k) != self.identity[k]]
        if diffs:
            raise DescriptionCacheError(
                f"{self.path} was built by another backend/model/prompt ({'; '.join(diffs)}). "
                "Write to another --out file, or delete this one to rebuild it.")
        if truncated:
            warnings.warn(f"{self.path}: cutting off a truncated last line (an interrupted write)", stacklevel=2)
            with open(self.path, "r+b") as f:
                f.truncate(valid_len)
                f.flush()
                os.fsync(f.fileno())
        self.header = header
        self.entries = {}
        for e in entries:
            self.entries.setdefault(e["clip_id"], e)

    @property
    def done(self) -> set[str]:
        return set(self.entries)

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def append(self, clip_id: str, text: str, raw: str, removed: list[dict[str, Any]] | None = None,
               **extra: Any) -> dict[str, Any]:
        """Write one clip's line (complete line, one write, flush + fsync)."""
        if clip_id in self.entries:
            raise DescriptionCacheError(f"{self.path}: clip {clip_id!r} is already described")
        entry = {"clip_id": clip_id, "text": text, "raw": raw, "removed": removed or [],
                 "backend": self.identity["backend"], "model_hash": self.identity["model_hash"],
                 "prompt_hash": self.identity["prompt_hash"], "leaks_label": self.identity["leaks_label"],
                 "time": _now(), "version": self.version, **extra}
        line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            written = os.write(fd, line)
            if written != len(line):  # never seen for regular files; refuse to leave half a line unnoticed
                raise OSError(f"{self.path}: short write ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries[clip_id] = entry
        return entry
