"""Canonical class orders and label-name mapping for DFEW, FERV39k and MAFW.

Peers disagree on class ids (reference §5.4), so every split reader maps labels *by name* through
this one module. Canonical orders are DFER-CLIP's: DFEW and FERV39k share the first seven classes
(= FineCLIPER Table 2 column order) and MAFW adds four, so ids 0..6 mean the same in all three.
"""
from __future__ import annotations

import re
from pathlib import Path

BASE7 = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
MAFW11 = BASE7 + ("contempt", "anxiety", "helplessness", "disappointment")

_CLASSES: dict[str, tuple[str, ...]] = {"dfew": BASE7, "ferv39k": BASE7, "mafw": MAFW11}
# DFEW and MAFW ship five cross-validation folds; FERV39k has one fixed train/test split (fold 1).
_NUM_FOLDS: dict[str, int] = {"dfew": 5, "ferv39k": 1, "mafw": 5}

# Column headers of the paper's Table 2 (MAFW's extra four are ours; "Dis." is disgust).
SHORT_NAMES: dict[str, str] = {
    "happiness": "Hap.", "sadness": "Sad.", "neutral": "Neu.", "anger": "Ang.", "surprise": "Sur.",
    "disgust": "Dis.", "fear": "Fea.", "contempt": "Con.", "anxiety": "Anx.",
    "helplessness": "Hel.", "disappointment": "Disa.",
}

# Every spelling seen in the official files and peer copies, lower-cased -> canonical name.
_ALIASES: dict[str, str] = {
    "happy": "happiness", "happiness": "happiness",
    "sad": "sadness", "sadness": "sadness",
    "neutral": "neutral",
    "angry": "anger", "anger": "anger",
    "surprise": "surprise", "surprised": "surprise",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "contempt": "contempt",
    "anxiety": "anxiety", "anxious": "anxiety",
    "helplessness": "helplessness", "helpless": "helplessness",
    "disappointment": "disappointment", "disappointed": "disappointment",
}

_DATASET_ALIASES = {"dfew": "dfew", "ferv39k": "ferv39k", "ferv39": "ferv39k", "mafw": "mafw"}


class LabelError(ValueError):
    """A label name or id that does not belong to the dataset's classes."""


def dataset_key(dataset: str) -> str:
    """Normalise a dataset name: 'DFEW' -> 'dfew', 'FERV39K' -> 'ferv39k'."""
    key = _DATASET_ALIASES.get(str(dataset).strip().lower().replace("-", "").replace("_", ""))
    if key is None:
        raise LabelError(f"unknown dataset {dataset!r}; expected one of dfew, ferv39k, mafw")
    return key


def classes(dataset: str) -> list[str]:
    """Canonical class names of ``dataset`` in label order (index = canonical label id)."""
    return list(_CLASSES[dataset_key(dataset)])


def num_folds(dataset: str) -> int:
    """How many official folds ``dataset`` has (FERV39k: 1)."""
    return _NUM_FOLDS[dataset_key(dataset)]


def folds(dataset: str) -> list[int]:
    """Every fold number of ``dataset``: [1, 2, 3, 4, 5], or [1] for FERV39k."""
    return list(range(1, num_folds(dataset) + 1))


def short_names(dataset: str) -> list[str]:
    return [SHORT_NAMES[c] for c in classes(dataset)]


def _where(file: str | Path | None, line: int | None) -> str:
    if file is None:
        return ""
    return f"{file}:{line}: " if line is not None else f"{file}: "


def canonical_name(name: str, *, file: str | Path | None = None, line: int | None = None) -> str:
    """'Happy' / 'happy' / 'happiness' -> 'happiness'. Unknown names raise, naming file and line."""
    key = str(name).strip().strip("'\"").lower()
    if key not in _ALIASES:
        raise LabelError(f"{_where(file, line)}unknown emotion label {name!r}; known names: {sorted(set(_ALIASES.values()))}")
    return _ALIASES[key]


def to_index(dataset: str, name: str, *, file: str | Path | None = None, line: int | None = None) -> int:
    """Canonical id of label ``name`` in ``dataset`` (e.g. to_index('dfew', 'Angry') == 3)."""
    cname = canonical_name(name, file=file, line=line)
    names = _CLASSES[dataset_key(dataset)]
    if cname not in names:
        raise LabelError(f"{_where(file, line)}label {name!r} ({cname}) is not a {dataset} class; {dataset} has {list(names)}")
    return names.index(cname)


def compound_to_indices(dataset: str, name: str, *, file: str | Path | None = None,
                        line: int | None = None) -> tuple[int, ...]:
    """MAFW compound label 'sadness_anxiety_helplessness' -> sorted canonical ids (9, 1, 8 -> (1, 8, 9))."""
    parts = [p for p in str(name).strip().split("_") if p]
    if not parts:
        raise LabelError(f"{_where(file, line)}empty compound label")
    return tuple(sorted({to_index(dataset, p, file=file, line=line) for p in parts}))


def read_id_map(dataset: str, path: str | Path) -> dict[int, int]:
    """Read a peer's id->name file and return {file id: canonical id}.

    Handles S2D's ``label_index.txt`` ("Angry 0", alphabetical, CRLF) and MAFW's ``id_to_calss.txt``
    ("0: 'Anger',"). Mapping goes through the class *name*, never the id.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label index file not found: {path}. It ships beside the split files (S2D layout).")
    mapping: dict[int, int] = {}
    text = path.read_text(encoding="utf-8-sig")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        m = re.fullmatch(r"(\d+)\s*:\s*['\"]?([A-Za-z]+)['\"]?\s*,?", line) or None
        if m:
            fid, name = int(m.group(1)), m.group(2)
        else:
            m = re.fullmatch(r"([A-Za-z]+)[\s,]+(\d+)", line)
            if not m:
                raise LabelError(f"{path}:{lineno}: cannot parse {raw!r}; expected 'Name id' or 'id: 'Name','")
            name, fid = m.group(1), int(m.group(2))
        if fid in mapping:
            raise LabelError(f"{path}:{lineno}: id {fid} listed twice")
        mapping[fid] = to_index(dataset, name, file=path, line=lineno)
    if len(set(mapping.values())) != len(mapping):
        raise LabelError(f"{path}: two ids map to the same class; check the file")
    return mapping
