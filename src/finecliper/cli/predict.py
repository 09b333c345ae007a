"""``finecliper predict``: expressions of every face of any video, per frame, window and face track."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from finecliper.cli import UsageError, print_error
from finecliper.io import check_writable

HELP = "Predict expressions in any video: per-frame, per-window and per-face tables, overlay video, explanations."

OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")  # a positional KEY=VALUE is a config override, not a video

EPILOG = """model (one of; none: the fer baseline, said in one line):
  --checkpoint DIR_OR_HUB_ID      a trained FineCLIPER (folder, or user/name on the Hugging Face Hub)
  --zero-shot --clip PATH         FineCLIPER at initialisation: CLIP zero-shot PN scoring, any --classes
  --baseline fer                  the FER2013 classifier bundled with fer, per frame on the face crops

Positional KEY=VALUE arguments override PredictConfig fields (crop.margin=0.3 min_face_px=48
cut_threshold=0 facemesh.max_yaw=60 ...); every other positional is a video or frame folder (a file
literally named like a=b.mp4 is given as ./a=b.mp4). Results: --out x.json (every table) or x.csv
(+ x.windows.csv, x.tracks.csv): a row per frame and face (a frame's probabilities are the mean of
the windows of that face holding it), per window, per face. Frames are [start, end) (end exclusive),
times are seconds from the first frame's timestamp (pts), boxes are pixels (x, y = top-left corner).
Backbones a checkpoint records are found by name and sha256: their recorded path, next to the
checkpoint, or in $FINECLIPER_CACHE/backbones (default ~/.cache/finecliper/backbones).

examples:
  finecliper predict interview.mp4 --out interview.csv
  finecliper predict film.mp4 --all-faces --checkpoint alice/finecliper-dfew --clip ViT-B-16.pt --overlay film.labels.mp4
  finecliper predict a.mp4 b.mp4 --zero-shot --clip ViT-B-16.pt --classes "joy,boredom,confusion" window_s=2"""

MORE_POSITIONALS = "inputs"  # videos and overrides may also follow the options (cli.main)
LONG_VIDEO_FRAMES = 250  # a progress bar from this many frames on (10 s at 25 fps)


def add_arguments(p) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = EPILOG
    p.add_argument("inputs", nargs="+", metavar="VIDEO|KEY=VALUE",
                   help="video files (mp4, avi, mkv, mov, webm, ...) or folders of frames, and config overrides KEY=VALUE")
    model = p.add_mutually_exclusive_group()
    model.add_argument("--checkpoint", metavar="DIR_OR_HUB_ID",
                       help="a FineCLIPER checkpoint folder (written by `finecliper train`) or a Hugging Face Hub id user/name")
    model.add_argument("--zero-shot", action="store_true",
                       help="FineCLIPER at initialisation on the frozen CLIP (needs --clip): zero-shot PN scoring of any "
                            "--classes (default the 7 DFEW classes); with --longclip the description path joins")
    model.add_argument("--baseline", choices=["fer"], help="a static per-frame classifier (the default when no model is given)")
    p.add_argument("--clip", metavar="PATH", help="frozen CLIP checkpoint (--zero-shot; with --checkpoint: instead of "
                                                  "the one found by its recorded sha256)")
    p.add_argument("--longclip", metavar="PATH", help="frozen Long-CLIP checkpoint (variants with descriptions; --zero-shot: "
                                                      "adds the description path)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="--zero-shot: let a TorchScript --clip (OpenAI's own ViT-B-16.pt) or a pickled one run its code "
                        "when loaded; only for files you trust")
    p.add_argument("--revision", metavar="REV", help="Hub revision of --checkpoint: a branch, tag or commit (default main)")
    p.add_argument("--classes", metavar="WORDS", help="comma-separated class words to score (FineCLIPER models; a checkpoint's untrained "
                                     "words are flagged as such)")
    p.add_argument("--all-faces", action="store_true",
                   help="every face gets a persistent id (default: the largest face of each shot)")
    p.add_argument("--window", type=float, default=None, metavar="S", help="window length in seconds (default 3.0)")
    p.add_argument("--stride", type=float, default=None, metavar="S", help="window stride in seconds (default 1.5)")
    p.add_argument("--describe", action="store_true", help="add the landmark description of each face and window")
    p.add_argument("--explain", metavar="DIR", help="write explanation PNGs per window into DIR (FineCLIPER models)")
    p.add_argument("--explain-maps", choices=["gradient", "attention", "both"], default=None,
                   help="which maps --explain writes: gradient x input, the last block's CLS attention (paper Fig. 6), "
                        "or both (default both)")
    p.add_argument("--overlay", metavar="OUT.mp4", help="write the video with boxes, face ids and running labels "
                                                        "(several videos: OUT.<video name>.mp4)")
    p.add_argument("--out", metavar="FILE", help="write the results as .json or .csv (see below)")
    p.add_argument("--overwrite", action="store_true", help="replace existing --out / --overlay files")
    p.add_argument("--device", default=None, metavar="DEV", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--config", metavar="YAML", help="YAML with PredictConfig fields (crop.*, facemesh.*, batch_size, ...)")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def split_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """(videos, KEY=VALUE overrides)."""
    overrides = [a for a in inputs if OVERRIDE.match(a)]
    return [a for a in inputs if not OVERRIDE.match(a)], overrides


def per_video_path(base, video, many: bool):
    """``out.mp4`` for one video; ``out.<video stem>.mp4`` for several."""
    base = Path(base)
    return base.with_name(f"{base.stem}.{Path(video).stem}{base.suffix}") if many else base


def check_outputs(args, videos: list[str], out_files: list[Path]) -> None:
    """Before any decoding: output folders writable (a probe file), finished results not replaced unless told.
    ``out_files``: the files ``--out`` writes."""
    targets = list(out_files)
    if args.overlay:
        targets += [per_video_path(args.overlay, v, len(videos) > 1) for v in videos]
    for t in targets:
        check_writable(Path(t).parent)
        if Path(t).exists() and not args.overwrite:
            raise UsageError(f"{t} exists; pass --overwrite to replace it, or choose another name")
    if args.explain:
        check_writable(args.explain)


def make_progress(quiet: bool):
    """A function giving each video its progress callback: a rich bar on stderr for long videos."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    def for_video(path):
        if quiet:
            return None
        state = {"bar": None, "task": None}

        def update(stage: str, done: int, total: int) -> None:
            if state["bar"] is None and total >= LONG_VIDEO_FRAMES:
                from rich.console import Console

                state["bar"] = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                        TimeRemainingColumn(), console=Console(stderr=True), transient=True)
                state["bar"].start()
            bar = state["bar"]
            if bar is None:
                return
            label = f"{path.name}: {'finding faces' if stage == 'faces' else 'scoring'}"
            if state["task"] is None or state["stage"] != stage:
                if state["task"] is not None:
                    bar.remove_task(state["task"])
                state["task"], state["stage"] = bar.add_task(label, total=total), stage
            bar.update(state["task"], completed=done, total=total)
            if stage == "scoring" and done >= total:
                bar.stop()

        return update

    return for_video


def run(args) -> int:
    import sys
    import warnings

    from rich.console import Console

    from finecliper.config import load_config
    from finecliper.predict.output import print_result, result_files, summary_line, write_results
    from finecliper.predict.overlay import write_overlay
    from finecliper.predict.pipeline import PredictConfig, Predictor, predict_videos
    from finecliper.predict.scorers import UntrainedClassesWarning, make_scorer

    videos, overrides = split_inputs(args.inputs)
    if not videos:
        raise UsageError("finecliper predict: no video given (only KEY=VALUE overrides)")
    if args.zero_shot and not args.clip:
        raise UsageError("--zero-shot needs the frozen CLIP checkpoint: --clip PATH (e.g. OpenAI's ViT-B-16.pt)")
    for flag, key in ((args.window, "window_s"), (args.stride, "stride_s"), (args.device, "device"),
                      (args.explain_maps, "explain_maps")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.all_faces:
        overrides.append("all_faces=true")
    if args.describe:
        overrides.append("describe=true")
    cfg = load_config(PredictConfig, args.config, overrides)
    if args.explain:
        cfg.explain = args.explain  # a path: not parsed as an override
    check_outputs(args, videos, result_files(args.out) if args.out else [])
    out, err = Console(quiet=args.quiet), Console(stderr=True, quiet=args.quiet, soft_wrap=True)
    classes = args.classes.split(",") if args.classes else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedClassesWarning)  # shown below, once per video
            scorer = make_scorer(checkpoint=args.checkpoint, zero_shot=args.zero_shot, baseline=args.baseline,
                                 clip=args.clip, longclip=args.longclip, classes=classes, device=cfg.device,
                                 precision=cfg.precision, revision=args.revision,
                                 allow_pickle=args.allow_pickle)
        predictor = Predictor(scorer, cfg)
    except ValueError as e:  # a model and options that do not go together: one line, no traceback
        raise UsageError(str(e)) from None
    if not (args.checkpoint or args.zero_shot or args.baseline):
        err.print("note: no model given: using the fer baseline (FER2013, per frame). For FineCLIPER pass "
                  "--checkpoint DIR_OR_HUB_ID, or --zero-shot --clip ViT-B-16.pt")
    many = len(videos) > 1
    results, errors = [], []
    try:
        for path, res, msg in predict_videos(predictor, videos, make_progress(args.quiet)):
            if msg is not None:
                errors.append((str(path), msg))
                print_error(msg)
                continue
            results.append(res)
            for w in res.warnings:
                err.print(f"warning: {w}", markup=False)
            print_result(out, res)
            if args.overlay:
                target = per_video_path(args.overlay, path, many)
                try:
                    write_overlay(path, target, res)
                    out.print(f"overlay: {target}", markup=False)
                except (OSError, ValueError) as e:
                    errors.append((str(path), f"overlay {target}: {e}"))
                    print_error(f"overlay {target}: {e}")
            out.print(summary_line(res), markup=False, soft_wrap=True)
    finally:
        predictor.close()
    if args.out:
        written = write_results(args.out, results, errors, scorer.describe())
        out.print(f"results: {', '.join(map(str, written))}", markup=False, soft_wrap=True)
    sys.stdout.flush()
    return 1 if errors else 0
