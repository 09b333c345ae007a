"""finecliper: dynamic facial expression recognition with FineCLIPER.

    import finecliper
    frames = finecliper.predict_video("clip.mp4")                                   # per-frame table
    model = finecliper.FineCLIPER.from_pretrained("user/name", clip="ViT-B-16.pt")  # folder or Hub id
    model = finecliper.FineCLIPER.from_config(finecliper.ModelConfig(variant="base", clip="ViT-B-16.pt", classes=[...], ...))
    model = finecliper.zero_shot_model("ViT-B-16.pt", classes=["joy", "boredom"])   # FineCLIPER at initialisation

The names below are imported on first use (PEP 562), so `import finecliper` and `finecliper --help`
stay instant (they would otherwise load torch and transformers).
"""
from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> (module, name there)
_EXPORTS = {
    "predict_video": ("finecliper.predict.api", "predict_video"),
    "PredictConfig": ("finecliper.predict.pipeline", "PredictConfig"),
    "Predictor": ("finecliper.predict.pipeline", "Predictor"),
    "PredictionFrame": ("finecliper.predict.tables", "PredictionFrame"),
    "make_scorer": ("finecliper.predict.scorers", "make_scorer"),
    "zero_shot_model": ("finecliper.predict.scorers", "zero_shot_model"),
    "FineCLIPER": ("finecliper.model.finecliper", "FineCLIPER"),
    "ModelConfig": ("finecliper.model.config", "ModelConfig"),
    "load_clip": ("finecliper.clip.load", "load"),
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'finecliper' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
