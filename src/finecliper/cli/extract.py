"""`finecliper extract`: face landmarks + parsing maps for every frame of every clip, cached per clip."""
from __future__ import annotations

import argparse
import sys

from finecliper.cli import add_overrides, examples, print_error

HELP = "Run the face backend on every frame of every clip and write the face cache (resumable)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="manifest JSON written by `finecliper prepare`")
    src.add_argument("--clips", help="folder of clips (video files and/or folders of frames, searched recursively)")
    p.add_argument("--data-root", help="with --manifest: the dataset folder, if it moved since `prepare`")
    p.add_argument("--out", required=True, help="cache folder (one .npz per clip + cache_manifest.json)")
    p.add_argument("--workers", type=int, default=1, help="processes, one face backend each (default 1)")
    p.add_argument("--shard", default="0/1", help="i/n: this run takes every n-th clip from the i-th (default 0/1)")
    p.add_argument("--raw", action="store_true",
                   help="raw footage: detect and follow the largest face, crop it (smoothed box) before analysis")
    p.add_argument("--backend", choices=["facemesh", "facexformer"],
                   help="face backend (default facemesh: MediaPipe's face models on LiteRT)")
    p.add_argument("--checkpoint", help="FaceXFormer checkpoint (ckpts/model.pt) for --backend facexformer")
    p.add_argument("--config", help="YAML file for ExtractConfig (backend, facemesh.*, crop.*, chunk)")
    add_overrides(p, "extract", "facemesh.max_faces=2 crop.out_size=256")
    examples(p, "finecliper extract --manifest runs/prep/manifest_dfew_clip_224x224.json --out runs/faces/dfew --workers 8",
             "finecliper extract --clips my_videos --raw --out runs/faces/mine",
             "finecliper extract --clips DFEW/Clip/clip_224x224 --backend facexformer --checkpoint ckpts/model.pt "
             "--out runs/faces/dfew_fxf facexformer.device=cuda")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from finecliper.config import load_config
    from finecliper.face.cache import FaceCacheError
    from finecliper.face.extract import (ExtractConfig, clips_from_manifest, discover_clips, parse_shard,
                                         run_extraction, shard)

    console = Console(stderr=True)
    try:
        cfg = load_config(ExtractConfig, args.config, list(args.overrides) + (["raw=true"] if args.raw else [])
                          + ([f"backend={args.backend}"] if args.backend else [])
                          + ([f"facexformer.checkpoint={args.checkpoint}"] if args.checkpoint else []))
        i, n = parse_shard(args.shard)
        clips = clips_from_manifest(args.manifest, args.data_root) if args.manifest else discover_clips(args.clips)
    except (ValueError, FileNotFoundError, OSError) as e:
        print_error(e)
        return 2
    clips = shard(clips, i, n)
    console.print(f"{len(clips)} clips (shard {i}/{n}) → {args.out}  backend={cfg.backend} raw={cfg.raw} "
                  f"workers={args.workers}")
    with Progress(TextColumn("[bold]extract"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[fps]:.1f} frames/s"), TimeRemainingColumn(), console=console) as prog:
        task = prog.add_task("extract", total=len(clips), fps=0.0)

        def on_progress(done, total, s):
            prog.update(task, completed=done, fps=s.fps)

        try:
            summary = run_extraction(clips, args.out, cfg, workers=args.workers, on_progress=on_progress)
        except FaceCacheError as e:
            print_error(e)
            return 2
    console.print(f"written {summary.written}, skipped (already cached) {summary.skipped}, failed {len(summary.failed)}; "
                  f"{summary.frames} frames in {summary.seconds:.1f} s = {summary.fps:.1f} frames/s")
    for cid, msg in summary.failed[:20]:
        console.print(f"[red]failed[/red] {cid}: {msg}")
    if len(summary.failed) > 20:
        console.print(f"... and {len(summary.failed) - 20} more")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    from finecliper.cli.main import main

    sys.exit(main(["extract", *sys.argv[1:]]))
