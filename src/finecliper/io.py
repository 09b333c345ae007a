"""Small file helpers shared by caches, manifests and checkpoints.

Everything written here is atomic (a temp file or folder beside the target, then ``os.replace``),
gets the permissions the user's umask asks for (0644 files, 0755 folders under the usual 022; bare
``mkstemp``/``mkdtemp`` would give 0600/0700 and lock a team out of shared runs), and an ``OSError``
of a write names the file it was writing.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Any, Iterator


def current_umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it back at once
    os.umask(mask)
    return mask


@contextlib.contextmanager
def naming_path(path: str | Path) -> Iterator[None]:
    """Give an ``OSError`` raised inside (e.g. ENOSPC on ``write``, which knows no file name) ``path``."""
    try:
        yield
    except OSError as e:
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path``; on success it replaces ``path`` in one step.

    A crash or exception leaves the old file (or none) in place, never a half-written one.
    """
    path = Path(path)
    with naming_path(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.chmod(tmp, 0o666 & ~current_umask())
            with os.fdopen(fd, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def remove_temp_files(folder: str | Path) -> list[str]:
    """Delete the temp files a killed :func:`atomic_write` left in ``folder`` (call it while nothing writes there)."""
    folder = Path(folder)
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return [p.name for p in stale]


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.write("\n")


def append_line(path: str | Path, line: str) -> None:
    """Append one complete line (one ``write``, then fsync), as JSONL logs need."""
    with naming_path(path), open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and write + remove a probe file in it: fails now, not after an epoch."""
    folder = Path(folder)
    with naming_path(folder):
        folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir():
            raise NotADirectoryError(20, "a file is in the way where a folder is expected", str(folder))
    probe = folder / f".write-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"finecliper")
        probe.unlink()
    except OSError as e:  # name the folder the user chose, not our probe
        raise OSError(e.errno, e.strerror or str(e), str(folder)) from e
    return folder


# ----------------------------------------------------------------------------- folders swapped atomically
#
# ``replace_dir(D)`` fills a temp folder ``.D.tmp-*`` and then swaps it in with two renames:
#     D -> OLD      (OLD is ``keep`` when the predecessor is kept, else ``.D.old``)
#     .D.tmp-* -> D
# A kill at any instant leaves a complete D, or (between the two renames) a complete OLD;
# ``recover_dir`` puts that back and removes half-written temp folders. Never both half-done.

def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _old_dir(directory: Path, keep: Path | None) -> Path:
    return keep if keep is not None else directory.with_name(f".{directory.name}.old")


def _stale(directory: Path) -> list[Path]:
    parent, n = directory.parent, directory.name
    if not parent.is_dir():
        return []
    return [p for p in parent.iterdir() if p.name.startswith((f".{n}.tmp-", f".{n}.trash-"))]


def recover_dir(directory: str | Path, keep: str | Path | None = None) -> list[str]:
    """Finish or undo an interrupted :func:`replace_dir`; returns what was done (for the log)."""
    directory = Path(directory)
    keep = Path(keep) if keep is not None else None
    old = _old_dir(directory, keep)
    done = []
    for p in _stale(directory):
        shutil.rmtree(p, ignore_errors=True)
        done.append(f"removed the unfinished {p.name}")
    if not directory.exists() and old.exists():  # killed between the two renames
        os.replace(old, directory)
        done.append(f"restored {directory.name} from {old.name} (a save was interrupted)")
    elif keep is None and old.exists():  # killed after the swap, before the clean-up
        shutil.rmtree(old, ignore_errors=True)
        done.append(f"removed {old.name}")
    return done


@contextlib.contextmanager
def replace_dir(directory: str | Path, keep: str | Path | None = None) -> Iterator[Path]:
    """Yield an empty temp folder beside ``directory``; on success it becomes ``directory``.

    ``keep``: where the replaced folder goes (kept as a fallback); default: deleted.
    """
    directory = Path(directory)
    keep = Path(keep) if keep is not None else None
    with naming_path(directory):
        recover_dir(directory, keep)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = directory.with_name(f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(mode=0o777)  # the umask applies, as for any folder
        try:
            yield tmp
            for f in tmp.iterdir():
                if f.is_file():
                    with open(f, "rb+") as fh:
                        os.fsync(fh.fileno())
            _fsync_dir(tmp)
            old = _old_dir(directory, keep)
            if old.exists():  # an earlier fallback: out of the way first, so no half-deleted folder remains
                trash = directory.with_name(f".{directory.name}.trash-{uuid.uuid4().hex[:8]}")
                os.replace(old, trash)
                shutil.rmtree(trash)
            if directory.exists():
                os.replace(directory, old)
            os.replace(tmp, directory)
            _fsync_dir(directory.parent)
            if keep is None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
