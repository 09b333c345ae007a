"""The package as users get it: the wheel's contents and metadata, the Python versions it claims, file modes.

(The install itself, a fresh venv with only the wheel's declared dependencies, `pip check` and a smoke run
outside the source tree, is .ci/wheel-test, which `make test` runs before this suite.)
"""
import ast
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

SRC = REPO / "src" / "finecliper"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q", "-w", str(out),
                           str(REPO)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = out.glob("finecliper-*.whl")
    return zipfile.ZipFile(path)


def metadata(wheel: zipfile.ZipFile):
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    return Parser().parsestr(wheel.read(name).decode())


def test_wheel_carries_configs_vocabulary_models_prompts_and_licenses(wheel):
    names = set(wheel.namelist())
    for f in ["configs/dfew.yaml", "configs/ferv39k.yaml", "configs/mafw.yaml",
              "clip/vocab/bpe_simple_vocab_16e6.txt.gz", "clip/vocab/LICENSE", "clip/vocab/NOTICE",
              "face/models/face_detection_short_range.tflite", "face/models/face_detection_full_range_sparse.tflite",
              "face/models/face_landmark.tflite", "face/models/LICENSE", "face/models/NOTICE",
              "baselines/models/emotion_model_quantized.tflite", "baselines/models/LICENSE", "baselines/models/NOTICE",
              "text/prompts/analyst_v1.txt", "text/emotion_words.txt"]:
        assert f"finecliper/{f}" in names, f
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    # every data file of the source tree is in the wheel (nothing added to src/ is silently left out)
    data = {p.relative_to(SRC.parent).as_posix() for p in SRC.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert data <= names, sorted(data - names)


def test_metadata_declares_ranges_an_spdx_license_and_the_supported_pythons(wheel):
    meta = metadata(wheel)
    requires = meta.get_all("Requires-Dist")
    assert requires and not [r for r in requires if "==" in r.split(";")[0]], "exact pins belong in requirements/constraints.txt"
    assert any(r.startswith("torch>=") for r in requires)
    assert not any(r.split(";")[0].startswith(("mediapipe", "open-clip", "open_clip", "fer")) for r in requires)
    assert meta["License-Expression"] == "MIT" and meta["Requires-Python"] == ">=3.10"
    assert {f"Programming Language :: Python :: 3.{v}" for v in (10, 11, 12, 13)} <= set(meta.get_all("Classifier"))
    assert "Provides-Extra" in meta and set(meta.get_all("Provides-Extra")) == {"llava", "dev"}
    assert meta.get_content_type() == "text/plain" and meta["Description-Content-Type"] == "text/markdown"
    assert meta.get_payload().lstrip().startswith("# finecliper")  # the README is the long description


def test_sources_are_python_3_10_syntax():
    """requires-python >= 3.10: no syntax newer than 3.10 anywhere in the package."""
    for path in SRC.rglob("*.py"):
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))


COMPILE_ALL = """
import pathlib, sys
bad = []
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    try:
        compile(p.read_text(encoding="utf-8"), str(p), "exec")
    except SyntaxError as e:
        bad.append(f"{p}:{e.lineno}: {e.msg}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


def python_executable(version: str) -> str | None:
    """``python3.X`` from PATH, or from pyenv's installed versions (its shims answer only for the active ones)."""
    candidates = [shutil.which(f"python{version}")]
    if shutil.which("pyenv"):
        bare = subprocess.run(["pyenv", "versions", "--bare"], capture_output=True, text=True).stdout.split()
        for v in sorted(b for b in bare if b.startswith(version + ".")):
            prefix = subprocess.run(["pyenv", "prefix", v], capture_output=True, text=True).stdout.strip()
            candidates.append(str(Path(prefix) / "bin" / "python3"))
    for exe in candidates:
        if exe and subprocess.run([exe, "--version"], capture_output=True).returncode == 0:
            return exe
    return None


def test_sources_compile_on_every_python_the_classifiers_name():
    """Each Python 3.10-3.13 found on this machine compiles the whole package (skipped where absent)."""
    found = []
    for version in ("3.10", "3.11", "3.12", "3.13"):
        exe = python_executable(version)
        if exe is None:
            continue
        found.append(version)
        proc = subprocess.run([exe, "-c", COMPILE_ALL, str(SRC)], capture_output=True, text=True)
        assert proc.returncode == 0, f"Python {version}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    if not found:
        pytest.skip("no Python 3.10-3.13 executable found (PATH or pyenv)")


def test_no_stdlib_name_newer_than_3_10():
    newer = {"tomllib", "wsgiref.types"}
    typing_newer = {"Self", "LiteralString", "Never", "assert_never", "reveal_type", "Required", "NotRequired",
                    "TypeVarTuple", "Unpack", "dataclass_transform", "override"}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & newer, path
            elif isinstance(node, ast.ImportFrom):
                assert node.module not in newer, path
                if node.module == "typing":
                    assert not {a.name for a in node.names} & typing_newer, path
                if node.module in ("datetime", "enum"):
                    assert not {a.name for a in node.names} & {"UTC", "StrEnum"}, path


def test_outputs_follow_the_umask(tmp_path):
    """A team's shared folder: caches and descriptions are written with the umask's modes, atomic writes too."""
    from skimage import data

    clip = tmp_path / "clips" / "a"
    clip.mkdir(parents=True)
    face = np.asarray(Image.fromarray(data.astronaut()).resize((224, 224)))
    for i in range(4):
        Image.fromarray(face).save(clip / f"{i:05d}.jpg")
    cli = [sys.executable, "-m", "finecliper.cli.main"]
    for args in (["extract", "--clips", "clips", "--out", "faces"],
                 ["describe", "--backend", "landmarks", "--clips", "clips", "--face-cache", "faces", "--fps", "25",
                  "--out", "desc/d.jsonl"]):
        proc = subprocess.run(cli + args, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              preexec_fn=lambda: os.umask(0o027))
        assert proc.returncode == 0, proc.stderr[-2000:]
    outputs = [p for root in ("faces", "desc") for p in [tmp_path / root, *(tmp_path / root).rglob("*")]]
    assert len(outputs) >= 5
    for p in outputs:
        assert p.stat().st_mode & 0o777 == (0o750 if p.is_dir() else 0o640), f"{p}: {oct(p.stat().st_mode)}"
