"""``finecliper.predict_video``: one call from a video file to the per-frame table.

    import finecliper
    df = finecliper.predict_video("interview.mp4")                         # fer baseline, no model needed
    df = finecliper.predict_video("interview.mp4", checkpoint="alice/finecliper-dfew", clip="ViT-B-16.pt")
    df = finecliper.predict_video("interview.mp4", zero_shot=True, clip="ViT-B-16.pt",
                                  classes=["joy", "boredom", "confusion"], all_faces=True)
    df.windows, df.tracks                  # the window and track tables
    df.save("interview.csv")               # + interview.windows.csv, interview.tracks.csv
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from finecliper.predict.overlay import write_overlay
from finecliper.predict.pipeline import PredictConfig, Predictor, StageProgress
from finecliper.predict.scorers import make_scorer
from finecliper.predict.tables import PredictionFrame, to_frame


def predict_video(path: str | Path, *, checkpoint: str | Path | None = None, zero_shot: bool = False,
                  baseline: str | None = None, clip: str | Path | None = None, longclip: str | Path | None = None,
                  classes: Sequence[str] | None = None, revision: str | None = None,
                  config: PredictConfig | None = None, overlay: str | Path | None = None,
                  progress: StageProgress | None = None, **options: Any) -> PredictionFrame:
    """Expression probabilities of every face of a video, per frame (``predict.tables``).

    Model, one of: ``checkpoint`` (a FineCLIPER checkpoint folder or Hub id ``user/name``, ``revision``),
    ``zero_shot=True`` with ``clip`` (FineCLIPER at initialisation: CLIP PN scoring of any ``classes``),
    ``baseline`` ("fer"); none: the fer baseline. ``clip``/``longclip``: frozen backbone files (a
    checkpoint finds its own by hash when they are in a known place). ``options``: PredictConfig fields
    (``all_faces=True``, ``window_s=2.0``, ``describe=True``, ...) on top of ``config``. ``overlay``: also
    write the annotated video there. Raises ``FrameError`` for a file that cannot be decoded.
    """
    cfg = dataclasses.replace(config or PredictConfig(), **options)
    scorer = make_scorer(checkpoint=checkpoint, zero_shot=zero_shot, baseline=baseline, clip=clip, longclip=longclip,
                         classes=classes, device=cfg.device, precision=cfg.precision, revision=revision)
    predictor = Predictor(scorer, cfg)
    try:
        result = predictor.predict(path, progress)
    finally:
        predictor.close()
    if overlay:
        write_overlay(path, overlay, result)
    return to_frame(result)
