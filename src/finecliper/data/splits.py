"""Readers for the official (and peer-copied) DFEW, FERV39k and MAFW split files.

Every reader returns :class:`ClipRecord` objects with *canonical* label ids (``labels.classes``),
mapped by name or through the file's own id map, never by trusting a peer's id order.

Layouts (``layout=``; ``"auto"`` picks the first whose file exists, under ``annotations_root`` or
``annotations_root/<DATASET>``):

- DFEW ``official``: ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_k.csv`` (labels 1..7);
  ``s2d``: same folders, ``{train,test}_set_k.csv`` (labels 0..6); ``dferclip``:
  ``DFEW_set_k_{train,test}.txt`` = ``<dir> <num_frames> <label0..6>``.
- FERV39k ``official``: ``4_setups/All_scenes/{train_All,test_All}.csv`` = ``<Scene>/<Emotion>/<id> <Emotion>``;
  ``s2d``: ``Annotation/{train,test}.csv`` = ``path,id`` + alphabetical ``label_index.txt``;
  ``dferclip``: ``FERV39K_{train,test}.txt``.
- MAFW ``official``: ``[anno|split|Train_Test_Set/]{single,compound}/{no_caption,with_caption}[_new]/set_k/{train,test}.txt``
  (``<id>.mp4 <name>``; with captions: TAB-separated ``id, name, Chinese, English``, GBK, CRLF);
  ``s2d_csv``: ``single/no_caption/set_k/{train,test}.csv`` + ``id_to_calss.txt``;
  ``dferclip``: ``MAFW_set_k_{train,test}.txt``.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from finecliper.data import labels as L

SPLITS = ("train", "test")
_DATASET_DIRS = {"dfew": ("DFEW", "dfew"), "ferv39k": ("FERV39K", "FERV39k", "ferv39k"), "mafw": ("MAFW", "mafw")}
_LAYOUTS = {"dfew": ("official", "s2d", "dferclip"), "ferv39k": ("official", "s2d", "dferclip"),
            "mafw": ("official", "s2d_csv", "dferclip")}


class SplitError(ValueError):
    """A split file that is missing, malformed, or disagrees with the configuration."""


@dataclass(frozen=True)
class ClipRecord:
    clip_id: str                    # "00001", "Scene/Happy/0001", "03747"
    path: str                       # relative to the clips root; a folder or a video stem/file
    label: int                      # canonical id; -1 when the clip has several labels (compound)
    labels: tuple[int, ...]         # all canonical ids (one for single-label clips), sorted
    num_frames: int | None = None   # from the annotation when it has one (DFER-CLIP layout)
    caption: str | None = None      # MAFW English caption
    caption_zh: str | None = None   # MAFW Chinese caption


@dataclass(frozen=True)
class SplitFile:
    path: Path
    layout: str
    id_map_path: Path | None = None  # S2D label_index.txt / id_to_calss.txt


# ----------------------------------------------------------------------------- locating files

def _bases(root: Path, dataset: str) -> list[Path]:
    out = [root] + [root / d for d in _DATASET_DIRS[dataset]]
    if root.name == "EmoLabel_DataSplit":
        out.append(root.parent)
    return out


def _find_ci(folder: Path, name: str) -> Path | None:
    """File ``name`` in ``folder``, matched case-insensitively (peer file names vary in case)."""
    exact = folder / name
    if exact.is_file():
        return exact
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.lower() == name.lower() and p.is_file():
                return p
    return None


def _candidates(dataset: str, layout: str, base: Path, fold: int, split: str, captions: bool,
                compound: bool) -> list[tuple[Path, Path | None]]:
    """(split file, optional id-map file) candidates of one layout under one base folder."""
    if dataset == "dfew":
        d = base / "EmoLabel_DataSplit" / f"{split}(single-labeled)"
        if layout == "official":
            return [(d / f"set_{fold}.csv", None)]
        if layout == "s2d":
            return [(d / f"{split}_set_{fold}.csv", None)]
        return [(b / f"DFEW_set_{fold}_{split}.txt", None) for b in (base, base / "annotation")]
    if dataset == "ferv39k":
        if layout == "official":
            return [(base / "4_setups" / "All_scenes" / f"{split}_All.csv", None)]
        if layout == "s2d":
            return [(base / "Annotation" / f"{split}.csv", base / "Annotation" / "label_index.txt")]
        return [(b / f"FERV39K_{split}.txt", None) for b in (base, base / "annotation")]
    # mafw
    kind = "compound" if compound else "single"
    if layout == "dferclip":
        return [(b / f"MAFW_set_{fold}_{split}.txt", None) for b in (base, base / "annotation")]
    out = []
    for parent in ("", "anno", "split", "Train_Test_Set"):
        p = base / parent if parent else base
        if layout == "s2d_csv":
            nc = p / "single" / "no_caption"
            out.append((nc / f"set_{fold}" / f"{split}.csv", nc / "id_to_calss.txt"))
            continue
        for sfx in ("", "_new"):
            cap = ("with_caption" if captions else "no_caption") + sfx
            out.append((p / kind / cap / f"set_{fold}" / f"{split}.txt", None))
    return out


def locate_split(dataset: str, annotations_root: str | Path, fold: int | None, split: str, *,
                 layout: str = "auto", captions: bool = False, compound: bool = False) -> SplitFile:
    """Find the split file for (dataset, fold, split) without reading it."""
    ds = L.dataset_key(dataset)
    root = Path(annotations_root)
    if split not in SPLITS:
        raise SplitError(f"split must be one of {SPLITS}, got {split!r}")
    nf = L.num_folds(ds)
    if nf == 1 and fold is None:
        fold = 1  # one fixed train/test split: the fold may be omitted
    if nf == 1 and fold != 1:
        raise SplitError(f"{dataset} has one fixed train/test split; fold must be 1 (or omitted), got {fold}")
    if not isinstance(fold, int) or not 1 <= fold <= nf:
        raise SplitError(f"{dataset}: fold must be an integer 1..{nf}, got {fold!r}")
    if captions and ds != "mafw":
        raise SplitError(f"captions=True: only MAFW ships captions, not {dataset}")
    if compound and ds != "mafw":
        raise SplitError(f"compound=True: only MAFW has compound labels, not {dataset}")
    layouts = _LAYOUTS[ds] if layout == "auto" else (layout,)
    if layout != "auto" and layout not in _LAYOUTS[ds]:
        raise SplitError(f"unknown {dataset} layout {layout!r}; expected auto or one of {_LAYOUTS[ds]}")
    if (captions or compound) and layout == "auto":
        layouts = ("official",)  # only the official MAFW tree has caption / compound files
    if not root.is_dir():
        raise SplitError(f"annotations folder not found: {root}. Point it at the folder that holds the {dataset} split files.")
    tried: list[Path] = []
    for lay in layouts:
        for base in _bases(root, ds):
            for path, idmap in _candidates(ds, lay, base, fold, split, captions, compound):
                found = _find_ci(path.parent, path.name) if lay == "dferclip" else (path if path.is_file() else None)
                tried.append(path)
                if found is not None:
                    return SplitFile(found, lay, idmap)
    shown = "\n  ".join(str(p) for p in tried[:12]) + ("\n  ..." if len(tried) > 12 else "")
    raise SplitError(f"{dataset} {split} split file (fold {fold}, layout {layout}) not found under {root}. Tried:\n  {shown}\n"
                     f"Point the annotations root at the folder that holds the official split files.")


# ----------------------------------------------------------------------------- reading text

def read_text(path: str | Path) -> tuple[str, str]:
    """Decode a split file as UTF-8, else GBK (MAFW caption files); never guess silently.

    Returns (text with '\\n' line ends, encoding used). A file that is neither raises.
    """
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8-sig"
    else:
        enc = "utf-8"
    try:
        text = data.decode(enc)
    except UnicodeDecodeError:
        try:
            text, enc = data.decode("gbk"), "gbk"
        except UnicodeDecodeError as e:
            raise SplitError(f"{path}: neither UTF-8 nor GBK (bad byte at offset {e.start}). "
                             f"Re-save the file in one of these encodings.") from e
    return text.replace("\r\n", "\n").replace("\r", "\n"), enc


def _lines(path: Path) -> list[tuple[int, str]]:
    text, _ = read_text(path)
    return [(i, ln) for i, ln in enumerate(text.split("\n"), 1) if ln.strip()]


# ----------------------------------------------------------------------------- label bases

def _resolve_base(ids: list[tuple[int, int]], label_base: int | str, num_classes: int, path: Path,
                  convention: int) -> int:
    """Check/infer whether integer ids in ``path`` are 0- or 1-based. ids: [(line, id)].

    A file holding a 0 (and no K) looks 0-based, one holding K (and no 0) looks 1-based. ``auto``
    follows that evidence, else the layout's ``convention`` (official DFEW 1, S2D/DFER-CLIP 0); an
    explicit base that contradicts the evidence is an error.
    """
    values = {v for _, v in ids}
    has0, hasK = 0 in values, num_classes in values
    if has0 and hasK:
        raise SplitError(f"{path}: labels span 0..{num_classes}, which fits neither a 0-based nor a 1-based "
                         f"{num_classes}-class file; check the file")
    looks = 0 if has0 else 1 if hasK else None
    if str(label_base) == "auto":
        base = convention if looks is None else looks
    else:
        try:
            base = int(label_base)
        except ValueError:
            raise SplitError(f"label_base must be 'auto', 0 or 1, got {label_base!r}") from None
        if base not in (0, 1):
            raise SplitError(f"label_base must be 'auto', 0 or 1, got {label_base!r}")
        if looks is not None and looks != base:
            why = "it contains label 0" if looks == 0 else f"it contains label {num_classes}"
            raise SplitError(f"{path}: label_base={base} is configured but the file looks {looks}-based ({why}). "
                             f"Set label_base={looks} (or 'auto') for this file.")
    for line, v in ids:
        if not base <= v < base + num_classes:
            raise SplitError(f"{path}:{line}: label {v} outside {base}..{base + num_classes - 1}")
    return base


def _int(s: str, path: Path, line: int, what: str) -> int:
    try:
        return int(s.strip())
    except ValueError:
        raise SplitError(f"{path}:{line}: {what} {s!r} is not an integer") from None


def _norm_id(raw: str) -> str:
    """'1' -> '00001' (DFEW ids are zero-padded to 5 digits); '03747.mp4' -> '03747'."""
    s = raw.strip()
    for ext in (".mp4", ".avi", ".mkv", ".mov", ".webm"):
        if s.lower().endswith(ext):
            s = s[: -len(ext)]
    return s.zfill(5) if s.isdigit() else s


def _rows_csv(path: Path, header_first: str) -> list[tuple[int, list[str]]]:
    text, _ = read_text(path)
    rows = []
    for i, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not "".join(row).strip():
            continue
        if i == 1 and row[0].strip().lower() == header_first:
            continue
        if len(row) != 2:
            raise SplitError(f"{path}:{i}: expected 2 comma-separated fields, got {len(row)}: {row!r}")
        rows.append((i, row))
    return rows


# ----------------------------------------------------------------------------- per layout

def _read_dfew(sf: SplitFile, label_base: int | str) -> list[ClipRecord]:
    p = sf.path
    if sf.layout == "dferclip":
        return _read_dferclip("dfew", sf, label_base, tail=1)
    rows = _rows_csv(p, "video_name")
    ids = [(i, _int(r[1], p, i, "label")) for i, r in rows]
    base = _resolve_base(ids, label_base, 7, p, 1 if sf.layout == "official" else 0)
    out = []
    for (i, r), (_, v) in zip(rows, ids):
        cid = _norm_id(r[0])
        out.append(ClipRecord(cid, cid, v - base, (v - base,)))
    return out


def _read_dferclip(ds: str, sf: SplitFile, label_base: int | str, tail: int) -> list[ClipRecord]:
    """DFER-CLIP lists: '<abs clip dir> <num_frames> <label>' (labels already in canonical order)."""
    p = sf.path
    rows = []
    for i, ln in _lines(p):
        parts = ln.split()
        if len(parts) != 3:
            raise SplitError(f"{p}:{i}: expected '<clip dir> <num_frames> <label>', got {ln!r}")
        rows.append((i, parts))
    k = len(L.classes(ds))
    ids = [(i, _int(r[2], p, i, "label")) for i, r in rows]
    base = _resolve_base(ids, label_base, k, p, 0)
    out = []
    for (i, r), (_, v) in zip(rows, ids):
        rel = "/".join(Path(r[0].replace("\\", "/")).parts[-tail:])
        n = _int(r[1], p, i, "num_frames")
        cid = rel if tail > 1 else _norm_id(rel)
        out.append(ClipRecord(cid, cid, v - base, (v - base,), num_frames=n))
    return out


def _check_ferv_folder(rel: str, label: int, p: Path, line: int) -> None:
    """FERV39k paths carry the emotion as a folder name; it must agree with the label column."""
    parts = rel.split("/")
    if len(parts) != 3:
        raise SplitError(f"{p}:{line}: FERV39k path {rel!r} is not <Scene>/<Emotion>/<id>")
    if L.to_index("ferv39k", parts[1], file=p, line=line) != label:
        raise SplitError(f"{p}:{line}: folder emotion {parts[1]!r} disagrees with label "
                         f"{L.classes('ferv39k')[label]!r}; the id map does not fit this file")


def _read_ferv39k(sf: SplitFile, label_base: int | str) -> list[ClipRecord]:
    p = sf.path
    if sf.layout == "dferclip":
        recs = _read_dferclip("ferv39k", sf, label_base, tail=3)
        for r in recs:
            _check_ferv_folder(r.path, r.label, p, 0)
        return recs
    if str(label_base) != "auto":
        raise SplitError(f"{p}: label_base applies to integer canonical ids; this {sf.layout} file is mapped by name")
    out = []
    if sf.layout == "official":
        for i, ln in _lines(p):
            parts = ln.split()
            if len(parts) != 2:
                raise SplitError(f"{p}:{i}: expected '<Scene>/<Emotion>/<id> <Emotion>', got {ln!r}")
            rel = parts[0].strip("/")
            y = L.to_index("ferv39k", parts[1], file=p, line=i)
            _check_ferv_folder(rel, y, p, i)
            out.append(ClipRecord(rel, rel, y, (y,)))
        return out
    idmap = L.read_id_map("ferv39k", sf.id_map_path)  # S2D: alphabetical ids
    for i, r in _rows_csv(p, "path"):
        fid = _int(r[1], p, i, "label id")
        if fid not in idmap:
            raise SplitError(f"{p}:{i}: label id {fid} not in {sf.id_map_path}")
        rel = r[0].strip().strip("/")
        y = idmap[fid]
        _check_ferv_folder(rel, y, p, i)
        out.append(ClipRecord(rel, rel, y, (y,)))
    return out


def _read_mafw(sf: SplitFile, label_base: int | str, captions: bool, compound: bool) -> list[ClipRecord]:
    p = sf.path
    if sf.layout == "dferclip":
        return _read_dferclip("mafw", sf, label_base, tail=1)
    if str(label_base) != "auto":
        raise SplitError(f"{p}: label_base applies to integer canonical ids; this {sf.layout} file is mapped by name")
    out = []
    if sf.layout == "s2d_csv":
        idmap = L.read_id_map("mafw", sf.id_map_path)
        for i, r in _rows_csv(p, "video_name"):
            fid = _int(r[1], p, i, "label id")
            if fid not in idmap:
                raise SplitError(f"{p}:{i}: label id {fid} not in {sf.id_map_path}")
            cid = _norm_id(r[0])
            out.append(ClipRecord(cid, cid, idmap[fid], (idmap[fid],)))
        return out
    for i, ln in _lines(p):
        if captions:
            parts = ln.split("\t")
            if len(parts) != 4:
                raise SplitError(f"{p}:{i}: expected 4 TAB-separated fields (id, label, Chinese caption, "
                                 f"English caption), got {len(parts)}")
        else:
            parts = ln.split()
            if len(parts) != 2:
                raise SplitError(f"{p}:{i}: expected '<id>.mp4 <label>', got {ln!r}")
        cid, name = _norm_id(parts[0]), parts[1].strip()
        if compound:
            ys = L.compound_to_indices("mafw", name, file=p, line=i)
            y = ys[0] if len(ys) == 1 else -1
        else:
            if "_" in name:
                raise SplitError(f"{p}:{i}: compound label {name!r} in a single-label file; use compound=True")
            y = L.to_index("mafw", name, file=p, line=i)
            ys = (y,)
        cap_en = parts[3].strip() if captions else None
        cap_zh = parts[2].strip() if captions else None
        if captions and not cap_en:
            raise SplitError(f"{p}:{i}: empty English caption for clip {cid}")
        out.append(ClipRecord(cid, cid, y, ys, caption=cap_en, caption_zh=cap_zh))
    return out


def read_split(dataset: str, annotations_root: str | Path, fold: int | None, split: str, *,
               layout: str = "auto", label_base: int | str = "auto", captions: bool = False,
               compound: bool = False) -> list[ClipRecord]:
    """Records of one split, labels in canonical order (see module docstring for layouts)."""
    ds = L.dataset_key(dataset)
    sf = locate_split(ds, annotations_root, fold, split, layout=layout, captions=captions, compound=compound)
    if ds == "dfew":
        recs = _read_dfew(sf, label_base)
    elif ds == "ferv39k":
        recs = _read_ferv39k(sf, label_base)
    else:
        recs = _read_mafw(sf, label_base, captions, compound)
    if not recs:
        raise SplitError(f"{sf.path}: no clips listed; the file is empty")
    seen: set[str] = set()
    for r in recs:
        if r.clip_id in seen:
            raise SplitError(f"{sf.path}: clip {r.clip_id!r} listed twice")
        seen.add(r.clip_id)
    return recs


def class_counts(records: list[ClipRecord], num_classes: int) -> list[int]:
    """Clips per canonical class (single-label records; compound clips count once per label)."""
    counts = [0] * num_classes
    for r in records:
        for y in r.labels:
            counts[y] += 1
    return counts


def write_dfew_split(annotations_root: str | Path, fold: int, split: str, rows) -> Path:
    """Write ``(clip_id, canonical label)`` rows as an official DFEW split file (labels 1..7), atomically.

    The inverse of ``read_split("dfew", ...)``: for datasets in DFEW's layout (the demo, tests).
    """
    from finecliper.io import atomic_write

    path = Path(annotations_root) / "EmoLabel_DataSplit" / f"{split}(single-labeled)" / f"set_{fold}.csv"
    lines = ["video_name,label"] + [f"{cid},{int(label) + 1}" for cid, label in rows]
    with atomic_write(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
