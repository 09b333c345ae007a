"""Atomic files and folders: permissions a team can share, recovery from a kill at every step, errors that name the file."""
import errno
import os
import stat
from pathlib import Path

import pytest

from finecliper.io import atomic_write, check_writable, recover_dir, replace_dir, write_json


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_write_respects_the_umask(tmp_path, umask_022):
    write_json(tmp_path / "a.json", {"x": 1})
    assert mode(tmp_path / "a.json") == 0o644
    os.umask(0o002)  # a group-writable team setting is honoured too
    with atomic_write(tmp_path / "b.bin") as f:
        f.write(b"1")
    assert mode(tmp_path / "b.bin") == 0o664


def test_replace_dir_respects_the_umask_and_swaps(tmp_path, umask_022):
    d = tmp_path / "ckpt"
    for version in (b"1", b"2"):
        with replace_dir(d) as tmp:
            (tmp / "w").write_bytes(version)
    assert (d / "w").read_bytes() == b"2" and mode(d) == 0o755 and mode(d / "w") == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp or old folder left


def test_replace_dir_keeps_the_predecessor_when_asked(tmp_path):
    last, prev = tmp_path / "last", tmp_path / "previous"
    for version in (b"1", b"2", b"3"):
        with replace_dir(last, keep=prev) as tmp:
            (tmp / "w").write_bytes(version)
    assert (last / "w").read_bytes() == b"3" and (prev / "w").read_bytes() == b"2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last", "previous"]


def test_a_failed_fill_leaves_the_old_folder(tmp_path):
    d = tmp_path / "ckpt"
    with replace_dir(d) as tmp:
        (tmp / "w").write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with replace_dir(d) as tmp:
            (tmp / "w").write_bytes(b"ha")
            raise RuntimeError("killed while writing")
    assert (d / "w").read_bytes() == b"good" and sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


# A kill can stop a swap after any of its steps; each leaves one of these states on disk.
def _state(tmp_path, last, previous, tmp=False, trash=False):
    for name, version in (("last", last), ("previous", previous)):
        if version:
            (tmp_path / name).mkdir()
            (tmp_path / name / "w").write_bytes(version)
    if tmp:  # the new checkpoint, possibly half-written
        (tmp_path / ".last.tmp-1234abcd").mkdir()
        (tmp_path / ".last.tmp-1234abcd" / "w").write_bytes(b"ha")
    if trash:  # the oldest checkpoint, being deleted
        (tmp_path / ".last.trash-1234abcd").mkdir()


@pytest.mark.parametrize("last, previous, tmp, trash, expect_last, expect_previous", [
    (b"1", None, True, False, b"1", None),      # killed while writing the new one
    (b"2", None, True, True, b"2", None),       # killed while deleting the oldest (moved aside first)
    (None, b"2", True, False, b"2", None),      # killed between the two renames: the previous one is back
    (b"3", b"2", False, False, b"3", b"2"),     # killed after the swap: nothing to do
])
def test_recover_dir_after_a_kill_at_each_step(tmp_path, last, previous, tmp, trash, expect_last, expect_previous):
    _state(tmp_path, last, previous, tmp, trash)
    recover_dir(tmp_path / "last", keep=tmp_path / "previous")
    assert (tmp_path / "last" / "w").read_bytes() == expect_last
    assert ((tmp_path / "previous" / "w").read_bytes() if (tmp_path / "previous").exists() else None) == expect_previous
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # stale folders gone


def test_recover_dir_without_a_kept_predecessor(tmp_path):
    (tmp_path / ".best.old").mkdir()
    (tmp_path / ".best.old" / "w").write_bytes(b"1")
    recover_dir(tmp_path / "best")  # killed between the renames
    assert (tmp_path / "best" / "w").read_bytes() == b"1"
    (tmp_path / ".best.old").mkdir()
    recover_dir(tmp_path / "best")  # killed after the swap, before the clean-up
    assert not (tmp_path / ".best.old").exists() and (tmp_path / "best").is_dir()


def test_a_write_error_names_the_file(tmp_path, monkeypatch):
    class FullDisk:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")  # as a real write: no file name

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as e:
        write_json(tmp_path / "r.json", {"x": 1})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "r.json")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # the temp file is gone


def test_temp_files_of_killed_writes_are_removed(tmp_path):
    from finecliper.io import remove_temp_files

    (tmp_path / ".curves.png.ab12cd34.tmp").write_bytes(b"half")
    (tmp_path / "curves.png").write_bytes(b"done")
    (tmp_path / ".last.tmp-1234").mkdir()  # folders are recover_dir's business
    assert remove_temp_files(tmp_path) == [".curves.png.ab12cd34.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".last.tmp-1234", "curves.png"]


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "new" / "out") == tmp_path / "new" / "out"
    assert list((tmp_path / "new" / "out").iterdir()) == []  # the probe is removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError) as e:
        check_writable(tmp_path / "file")
    assert e.value.filename == str(tmp_path / "file")
