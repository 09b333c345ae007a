"""The face models finecliper ships: MediaPipe 0.10.14's BlazeFace detectors and face-mesh network.

Copied unchanged from the ``mediapipe==0.10.14`` wheel (``mediapipe/modules/face_detection/`` and
``mediapipe/modules/face_landmark/``), Apache-2.0; see NOTICE and LICENSE in this folder. Their sha256
is recorded here, checked whenever a model is loaded, and written into every face-cache manifest.
"""
from __future__ import annotations

from pathlib import Path

MODEL_DIR = Path(__file__).resolve().parent
ORIGIN = "mediapipe 0.10.14 (Apache-2.0)"

SHA256 = {
    "face_detection_short_range.tflite": "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    "face_detection_full_range_sparse.tflite": "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    "face_landmark.tflite": "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
}


def model_path(name: str) -> Path:
    if name not in SHA256:
        raise KeyError(f"no vendored face model {name!r}; known: {sorted(SHA256)}")
    return MODEL_DIR / name
