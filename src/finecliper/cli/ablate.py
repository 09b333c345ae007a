"""``finecliper ablate``: run the rows of one of the paper's ablation tables and write it beside the paper's numbers."""
from __future__ import annotations

from finecliper.ablation.tables import TABLES, get_table, select_rows
from finecliper.cli import UsageError, add_folds, add_overrides, examples, parse_folds

HELP = ("Run an ablation of the paper (Tab. 4-9, appendix Fig. 8 'fig8') row by row (resumable) and write the table "
        "(Markdown, CSV, JSON) with the paper's numbers beside ours, plus parameters vs UAR (Fig. 7).")


def add_arguments(p) -> None:
    p.add_argument("--table", help="4 | 5 | 6 | 7 | 8 | 9 | fig8 (the fixed video-weight sweep); --list shows them")
    p.add_argument("--rows", default=None,
                   help="comma-separated row names (default: the paper's rows; 'all' adds the extra ones)")
    p.add_argument("--config", help="the dataset config the rows are applied on: a shipped one (dfew, ferv39k, mafw) "
                                    "or a YAML file")
    add_folds(p, "data.fold")
    p.add_argument("--out", default=None, help="output folder (default: runs/ablation/<dataset>/tab<N>)")
    p.add_argument("--backbone", action="append", default=[], metavar="NAME=PATH",
                   help="checkpoint of a Tab. 8 backbone, e.g. --backbone ViT-L/14=ViT-L-14.pt (repeatable); "
                        "ViT-B/16 is model.clip")
    p.add_argument("--clip", help="shorthand for model.clip=PATH (counts then come from this checkpoint)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the rows, their overrides and trainable parameters; train nothing")
    p.add_argument("--list", action="store_true", help="list the tables and their rows, then exit")
    add_overrides(p, "ablate", "train.epochs=5 data.root=DIR")
    examples(p, "finecliper ablate --list",
             "finecliper ablate --table 4 --config dfew --dry-run",
             "finecliper ablate --table 5 --config dfew --folds all data.root=DFEW data.annotations=DFEW "
             "model.clip=ViT-B-16.pt model.longclip=longclip-B.pt")


def parse_backbones(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--backbone {item!r} is not NAME=PATH (e.g. ViT-L/14=ViT-L-14.pt)")
        out[name] = path
    return out


def print_tables(console) -> None:
    for t in TABLES.values():
        console.print(f"[bold]{t.key}[/]  {t.title}")
        for r in t.rows:
            console.print(f"    {r.key:<20} {r.meaning}" + ("  [dim](extra: not in the paper)[/]" if r.extra else ""))


def print_plans(console, table, plans, shape_source: str) -> None:
    """One block per row: its cells, trainable parameters, state, then its overrides and meaning."""
    console.print(f"[bold]{table.title}[/]  (parameters on {shape_source})")
    for p in plans:
        cells = "  ".join(f"{c}: {v}" for c, v in zip(table.columns, p.row.cells))
        counts = p.params or {}
        console.print(f"[bold]{p.row.key}[/]  {cells}  ·  trainable [bold]{counts.get('trainable', 0):,}[/]"
                      f"  ·  {'finished' if p.finished else 'to run'}" + ("  ·  extra (not in the paper)" if p.row.extra else ""))
        console.print(f"    {' '.join(p.row.overrides)}", highlight=False, markup=False)
        console.print(f"    [dim]{p.row.meaning}[/]")


def run(args) -> int:
    from pathlib import Path

    from rich.console import Console

    from finecliper.ablation.report import write_table
    from finecliper.ablation.run import plan_rows, run_rows
    from finecliper.config import load_config
    from finecliper.model.shapes import MetaBackbones, count_parameters
    from finecliper.train.config import ExperimentConfig

    console = Console()
    if args.list:
        print_tables(console)
        return 0
    if not args.table:
        raise UsageError("finecliper ablate: --table is required (--list shows the tables)")
    try:
        table = get_table(args.table)
        rows = select_rows(table, [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    overrides = [*args.overrides, *([f"model.clip={args.clip}"] if args.clip else [])]
    base = load_config(ExperimentConfig, args.config, overrides)  # the dataset and its default fold
    folds = parse_folds(args.folds, base.data.dataset, base.data.fold)
    out = Path(args.out or f"runs/ablation/{base.data.dataset}/tab{table.key}")
    plans = plan_rows(table, rows, args.config, overrides, folds, out, parse_backbones(args.backbone))
    backbones = MetaBackbones()
    for p in plans:
        p.params = count_parameters(p.cfg.model, p.row.backbone, backbones)
    print_plans(console, table, plans, "the checkpoints given" if args.clip or args.backbone or base.model.clip
                else "each row's released CLIP shape, no weights loaded")
    if args.dry_run:
        console.print(f"dry run: nothing trained; the runs would go to {out}/rows/<row>")
        return 0

    out.mkdir(parents=True, exist_ok=True)

    def echo(line: str) -> None:  # the console and out/ablate.log
        console.print(line)
        with open(out / "ablate.log", "a") as f:
            f.write(line + "\n")

    run_rows(plans, folds, echo)
    paths = write_table(out, table, plans, base.data.dataset, folds)
    console.print(f"table: {paths[0]} ({', '.join(p.name for p in paths[1:])} beside it)")
    return 0
