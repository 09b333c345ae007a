"""``finecliper train``: train (and evaluate every epoch) one fold, several, or all."""
from __future__ import annotations

from finecliper.cli import UsageError
from finecliper.data.labels import num_folds

HELP = "Train a FineCLIPER variant on DFEW, FERV39k or MAFW (one fold, several, or all five)."


def add_arguments(p) -> None:
    p.add_argument("--config", help="a shipped config (dfew, ferv39k, mafw: `finecliper config list`) or a YAML file; defaults apply where it is silent")
    p.add_argument("--folds", default=None, help="'all', or comma-separated fold numbers (default: data.fold)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue each fold after its last finished epoch (a fold with no run starts fresh)")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the runs already in the output folder (without it, or --resume, train refuses)")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5 model.variant=star data.root=DIR")


def parse_folds(spec: str | None, dataset: str, default: int) -> list[int]:
    n = num_folds(dataset)
    if spec is None:
        return [default]
    if spec == "all":
        return list(range(1, n + 1))
    try:
        folds = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--folds {spec!r}: expected 'all' or comma-separated fold numbers, e.g. 1,3") from None
    bad = [k for k in folds if not 1 <= k <= n]
    if bad or not folds:
        raise UsageError(f"--folds {spec!r}: {dataset} has folds 1..{n}")
    return folds


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
