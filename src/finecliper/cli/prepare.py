"""`finecliper prepare`: validate a dataset variant against its split files and write a manifest."""
from __future__ import annotations

import argparse

from finecliper.cli import add_folds, examples, parse_folds

HELP = "Check every clip of a dataset's split(s) against disk and write a manifest JSON."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=["dfew", "ferv39k", "mafw"], help="which dataset the split files describe")
    p.add_argument("--annotations", required=True, help="folder holding the split files (or its parent)")
    p.add_argument("--data-root", required=True, help="dataset folder that holds the frame variant")
    p.add_argument("--variant", required=True, help="frame variant folder, e.g. clip_224x224 ('.' = data root itself)")
    add_folds(p, "all")
    p.add_argument("--out", required=True, help="output folder for manifest_<dataset>_<variant>.json")
    p.add_argument("--layout", default="auto", help="split-file layout (auto, official, s2d, s2d_csv, dferclip)")
    p.add_argument("--label-base", default="auto", choices=["auto", "0", "1"], help="integer-label base, checked against the file")
    p.add_argument("--captions", action="store_true", help="MAFW: with_caption files")
    p.add_argument("--compound", action="store_true", help="MAFW: compound labels")
    p.add_argument("--check", default="sampled", choices=["count", "sampled", "all"],
                   help="decode nothing, the 16 eval-sampled frames (default), or every frame")
    p.add_argument("--min-frames", type=int, default=1, help="clips with fewer frames are a problem (default 1)")
    p.add_argument("--num-frames", type=int, default=16, help="frames sampled per clip (for the 'shorter than' stat)")
    p.add_argument("--workers", type=int, default=2, help="processes checking clips (default 2)")
    p.add_argument("--strict", action="store_true", help="exit with an error if any problem is found")
    examples(p, "finecliper prepare --dataset dfew --annotations DFEW --data-root DFEW --variant clip_224x224 --out runs/prep",
             "finecliper prepare --dataset mafw --annotations MAFW --data-root MAFW/data --variant faces --folds 1 --captions --out runs/prep",
             "finecliper prepare --dataset ferv39k --annotations FERV39k --data-root FERV39k --variant 2_ClipsforFaceCrop --check all --strict --out runs/prep")


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console
    from rich.progress import Progress

    from finecliper.data.frames import FrameError
    from finecliper.data.prepare import prepare, print_summary, write_manifest
    from finecliper.data.splits import SplitError

    console = Console(stderr=False)
    folds = parse_folds(args.folds, args.dataset, None)
    try:
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task("checking clips", total=None)
            manifest = prepare(args.dataset, args.annotations, args.data_root, args.variant, folds=folds,
                               layout=args.layout, label_base=args.label_base, captions=args.captions,
                               compound=args.compound, check=args.check, min_frames=args.min_frames,
                               num_segments=args.num_frames, workers=args.workers,
                               progress=lambda i, n: prog.update(task, completed=i, total=n))
    except (SplitError, FrameError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = write_manifest(manifest, args.out)
    print_summary(manifest, console)
    console.print(f"manifest written to {path}")
    if args.strict and manifest["problems"]:
        print(f"error: {len(manifest['problems'])} problems found (--strict); see {path}", file=sys.stderr)
        return 1
    return 0
