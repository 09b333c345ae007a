"""A Hugging Face cache laid out exactly as huggingface_hub lays out a download (no network needed).

    <cache>/models--<user>--<name>/
        blobs/<hash>                      the file contents
        snapshots/<commit>/<file>         relative symlinks into blobs/
        refs/<branch or tag>              the commit hash it points at

(huggingface_hub's "Understand caching" guide). ``huggingface_hub.scan_cache_dir`` reads it back, which
the tests use to prove the layout is the library's.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path


def publish(folder: str | Path, cache: str | Path, repo_id: str, refs: tuple[str, ...] = ("main",)) -> str:
    """Put the files of ``folder`` into ``cache`` as one commit of ``repo_id``; returns the commit hash."""
    from huggingface_hub.file_download import repo_folder_name

    folder, cache = Path(folder), Path(cache)
    files = sorted(p for p in folder.iterdir() if p.is_file())
    commit = hashlib.sha1(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
    storage = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    for p in files:
        data = p.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / p.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    for ref in refs:
        (storage / "refs" / ref).write_text(commit)
    return commit


class FakeHub:
    """Stands in for ``HfApi.create_repo``/``create_branch``/``upload_folder``: an upload lands in a local
    HF cache (and a copy of the uploaded folder is kept to look at)."""

    def __init__(self, cache: Path, copies: Path):
        self.cache, self.copies = Path(cache), Path(copies)
        self.uploads: list[dict] = []

    def install(self, monkeypatch) -> "FakeHub":
        from huggingface_hub import HfApi, RepoUrl

        hub = self

        def create_repo(api, repo_id, **kw):
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def create_branch(api, repo_id, branch, **kw):
            return None

        def upload_folder(api, *, repo_id, folder_path, revision=None, **kw):
            copy = hub.copies / f"upload{len(hub.uploads)}"
            shutil.copytree(folder_path, copy)
            commit = publish(copy, hub.cache, repo_id, refs=(revision or "main",))
            hub.uploads.append({"repo_id": repo_id, "folder": copy, "commit": commit, "revision": revision, **kw})
            return f"https://huggingface.co/{repo_id}/commit/{commit}"

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "create_branch", create_branch)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
        return self
