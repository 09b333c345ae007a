"""``finecliper train``: train (and evaluate every epoch) one fold, several, or all."""
from __future__ import annotations

HELP = "Train a FineCLIPER variant on DFEW, FERV39k or MAFW (one fold, several, or all five)."


def add_arguments(p) -> None:
    p.add_argument("--config", help="experiment YAML (see configs/); defaults apply where it is silent")
    p.add_argument("--folds", default=None, help="'all', or comma-separated fold numbers (default: data.fold)")
    p.add_argument("--resume", action="store_true", help="continue each fold after its last finished epoch")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5 model.variant=star data.root=DIR")


def parse_folds(spec: str | None, dataset: str, default: int) -> list[int]:
    from finecliper.data.labels import dataset_key

    n = 1 if dataset_key(dataset) == "ferv39k" else 5
    if spec is None:
        return [default]
    if spec == "all":
        return list(range(1, n + 1))
    folds = [int(x) for x in spec.split(",") if x.strip()]
    bad = [k for k in folds if not 1 <= k <= n]
    if bad:
        raise SystemExit(f"fold(s) {bad} out of range: {dataset} has folds 1..{n}")
    return folds


def run(args) -> int:
    from rich.console import Console

    from finecliper.config import load_config
    from finecliper.train.config import ExperimentConfig
    from finecliper.train.loop import train_folds

    cfg = load_config(ExperimentConfig, args.config, args.overrides)
    folds = parse_folds(args.folds, cfg.data.dataset, cfg.data.fold)
    summary = train_folds(cfg, folds, resume=args.resume)
    if summary:
        c = Console()
        for tag in ("last", "best"):
            u, w = summary[tag]["uar"], summary[tag]["war"]
            c.print(f"[bold]{tag:>4}[/] ({'last epoch' if tag == 'last' else 'best-on-test epoch'}): "
                    f"UAR {100 * u['mean']:.2f} ± {100 * u['std']:.2f}   WAR {100 * w['mean']:.2f} ± {100 * w['std']:.2f}   "
                    f"over {u['n_folds']} fold(s)")
        c.print(f"reports in {cfg.out}")
    return 0
