"""``finecliper train``: train (and evaluate every epoch) one fold, several, or all."""
from __future__ import annotations

from finecliper.cli import add_folds, add_overrides, examples, parse_folds

HELP = "Train a FineCLIPER variant on DFEW, FERV39k or MAFW (one fold, several, or all five)."


def add_arguments(p) -> None:
    p.add_argument("--config", help="a shipped config (dfew, ferv39k, mafw: `finecliper config list`) or a YAML file; defaults apply where it is silent")
    add_folds(p, "data.fold")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue each fold after its last finished epoch (a fold with no run starts fresh)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the runs already in the output folder (without it, or --resume, train refuses)")
    add_overrides(p, "train", "train.epochs=5 model.variant=star data.root=DIR")
    examples(p, "finecliper train --config dfew --folds all model.variant=star_dagger model.clip=ViT-B-16.pt "
                "model.longclip=longclip-B.pt data.root=DFEW data.annotations=DFEW face_cache=runs/faces/dfew "
                "descriptions=runs/desc/dfew_landmarks.jsonl",
             "finecliper train --config dfew --folds 2 --resume data.root=DFEW data.annotations=DFEW model.clip=ViT-B-16.pt",
             "torchrun --nproc-per-node 8 -m finecliper.cli.main train --config mafw --folds all data.root=MAFW ...")


def run(args) -> int:
    # heavy modules (torch, transformers) load here, not at `finecliper --help`
    from rich.console import Console

    from finecliper.config import load_config
    from finecliper.train.config import ExperimentConfig
    from finecliper.train.loop import train_folds

    cfg = load_config(ExperimentConfig, args.config, args.overrides)
    folds = parse_folds(args.folds, cfg.data.dataset, cfg.data.fold)
    summary = train_folds(cfg, folds, resume=args.resume, overwrite=args.overwrite)
    if summary:
        c = Console()
        for tag in ("last", "best"):
            u, w = summary[tag]["uar"], summary[tag]["war"]
            c.print(f"[bold]{tag:>4}[/] ({'last epoch' if tag == 'last' else 'best-on-test epoch'}): "
                    f"UAR {100 * u['mean']:.2f} ± {100 * u['std']:.2f}   WAR {100 * w['mean']:.2f} ± {100 * w['std']:.2f}   "
                    f"over {u['n_folds']} fold(s)")
        c.print(f"reports in {cfg.out}")
    return 0
