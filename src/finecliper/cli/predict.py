"""``finecliper predict``: a checkpoint on any video, per face track and time window."""
from __future__ import annotations

HELP = "Predict expressions in any video: face tracks, windows, probabilities, overlay video, explanations."


def add_arguments(p) -> None:
    p.add_argument("videos", nargs="+", help="video files (mp4, avi, mkv, mov, webm, ...) or folders of frames")
    p.add_argument("--checkpoint", required=True, help="checkpoint directory written by `finecliper train`")
    p.add_argument("--clip", help="frozen CLIP checkpoint (default: the path recorded in the checkpoint)")
    p.add_argument("--longclip", help="frozen Long-CLIP checkpoint (variants with descriptions)")
    p.add_argument("--all-faces", action="store_true", help="every face gets a persistent track id (default: the largest face)")
    p.add_argument("--window", type=float, default=None, help="window length in seconds (default 3.0)")
    p.add_argument("--stride", type=float, default=None, help="window stride in seconds (default 1.5)")
    p.add_argument("--classes", help="comma-separated class words to score instead of the trained ones (open vocabulary)")
    p.add_argument("--describe", action="store_true", help="add the landmark description of each track and window")
    p.add_argument("--explain", metavar="DIR", help="write a gradient x input heatmap PNG per window into DIR")
    p.add_argument("--overlay", metavar="OUT.mp4", help="write the video with boxes, track ids and running labels")
    p.add_argument("--out", metavar="FILE", help="write the results as .json or .csv")
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default auto)")
    p.add_argument("--config", help="YAML with PredictConfig fields (crop.*, facemesh.*, batch_size, ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a PredictConfig field, e.g. --set crop.margin=0.3 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no table on the terminal")


def per_video_path(base, video, many: bool):
    """``out.mp4`` for one video; ``out.<video stem>.mp4`` for several."""
    from pathlib import Path

    base = Path(base)
    return base.with_name(f"{base.stem}.{Path(video).stem}{base.suffix}") if many else base


def run(args) -> int:
    import sys
    import warnings
    from pathlib import Path

    from rich.console import Console

    from finecliper.config import ConfigError, load_config
    from finecliper.model.factory import CheckpointError
    from finecliper.predict.output import print_result, write_results
    from finecliper.predict.pipeline import PredictConfig, Predictor, UntrainedClassesWarning, predict_videos

    console, err = Console(), Console(stderr=True)
    overrides = list(args.overrides)
    for flag, key in ((args.window, "window_s"), (args.stride, "stride_s"), (args.device, "device")):
        if flag is not None:
            overrides.append(f"{key}={flag}")
    if args.all_faces:
        overrides.append("all_faces=true")
    if args.describe:
        overrides.append("describe=true")

    try:
        cfg = load_config(PredictConfig, args.config, overrides)
        if args.explain:
            cfg.explain = args.explain  # a path: not parsed as an override
    except ConfigError as e:
        err.print(f"[red]error:[/] {e}")
        return 2
    if args.out and Path(args.out).suffix.lower() not in (".json", ".csv"):
        err.print(f"[red]error:[/] --out {args.out}: use a .json or .csv file name")
        return 2
    classes = [c for c in args.classes.split(",")] if args.classes else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedClassesWarning)  # shown below, once per video
            predictor = Predictor.from_checkpoint(args.checkpoint, args.clip, args.longclip, cfg, classes)
    except (CheckpointError, ValueError, OSError) as e:
        err.print(f"[red]error:[/] {e}")
        return 2
    many = len(args.videos) > 1
    results, errors = [], []
    try:
        for path, res, msg in predict_videos(predictor, args.videos):
            if msg is not None:
                errors.append((str(path), msg))
                err.print(f"[red]error:[/] {msg}")
                continue
            results.append(res)
            if not args.quiet:
                print_result(console, res)
            else:
                for w in res.warnings:  # untrained classes, guessed frame rate: never silent
                    err.print(f"[yellow]warning:[/] {w}")
            if args.overlay:
                from finecliper.predict.overlay import write_overlay

                out = per_video_path(args.overlay, path, many)
                try:
                    write_overlay(path, out, res)
                    if not args.quiet:
                        console.print(f"overlay: {out}")
                except (OSError, ValueError) as e:
                    errors.append((str(path), f"overlay {out}: {e}"))
                    err.print(f"[red]error:[/] overlay {out}: {e}")
    finally:
        predictor.close()
    if args.out:
        write_results(args.out, results, errors, str(args.checkpoint))
        if not args.quiet:
            console.print(f"results: {args.out}")
    sys.stdout.flush()
    return 1 if errors else 0
