"""Loading a TFLite model with ai-edge-litert: its file checked, one interpreter per caller, and quiet.

The rule, stated once: every ``.tflite`` finecliper runs goes through :func:`load_interpreter`. It checks
the file's sha256 when one is given (a vendored model that changed on disk is refused, not used), builds
the interpreter with an explicit thread count, and allocates its tensors with the process's stderr
(file descriptor 2) sent to /dev/null: LiteRT's C++ code prints "INFO: Created TensorFlow Lite XNNPACK
delegate for CPU." there, below anything Python's ``sys.stderr`` can catch. An interpreter is not
thread-safe: make one per worker or analyser.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from finecliper.io import sha256_file

INSTALL_HINT = "install the LiteRT runtime: pip install ai-edge-litert"


class ModelFileError(RuntimeError):
    """A model file that is missing, altered or not loadable by LiteRT."""


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (C/C++ log lines included)."""
    with contextlib.suppress(AttributeError, ValueError):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (a detached process): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_interpreter(path: str | Path, *, sha256: str | None = None, num_threads: int | None = 1):
    """A ready ``ai_edge_litert`` Interpreter for ``path`` (tensors allocated), built without log noise."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ModelFileError(f"cannot import ai_edge_litert ({e}); {INSTALL_HINT}") from e
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256:
            raise ModelFileError(f"{path}: sha256 {got} is not the recorded {sha256}; the file was altered or "
                                 f"truncated: reinstall finecliper")
    try:
        with native_stderr_silenced():
            interp = Interpreter(model_path=str(path), num_threads=num_threads)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelFileError(f"{path}: not a loadable TFLite model ({e})") from e
    return interp
