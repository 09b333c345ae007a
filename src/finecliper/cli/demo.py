"""`finecliper demo`: generate a small synthetic expression dataset from shipped photos and run the whole pipeline."""
from __future__ import annotations

import argparse
import sys

from finecliper.cli import add_overrides, examples, print_error

HELP = ("Run the whole pipeline (generate -> prepare -> extract -> describe -> train -> evaluate -> predict -> report) "
        "on a synthetic expression dataset animated from photos that ship offline; a tiny random backbone.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo); re-running replaces its stages")
    p.add_argument("--quick", action="store_true", help="reduced sizes (12 identities, fewer epochs): about 2 minutes")
    add_overrides(p, "demo", "identities=60 epochs=20 size=224 baseline=false")
    examples(p, "finecliper demo", "finecliper demo --quick --out runs/demo-quick",
             "finecliper demo identities=60 epochs=20 --out runs/demo-60")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from finecliper.config import ConfigError
    from finecliper.demo.run import DemoError, demo_config, run_demo

    console = Console()
    try:
        cfg = demo_config(args.quick, args.overrides, args.out)
    except (ConfigError, ValueError) as e:
        print_error(e)
        return 2
    console.print("[bold yellow]finecliper demo: a SYNTHETIC task[/] (expressions animated from still photos) on a "
                  "small RANDOMLY INITIALISED CLIP backbone: it shows the pipeline works end to end, not real DFER "
                  "accuracy.")
    try:
        res = run_demo(cfg, echo=console.print)
    except (DemoError, FileExistsError, ValueError) as e:
        print_error(e)
        return 1
    total = sum(s.seconds for s in res.stages)
    console.print(f"\n[bold]held-out identities ({res.n_test} clips): UAR {100 * res.uar:.2f}%  WAR {100 * res.war:.2f}%[/]"
                  f"  (chance 14.29%; synthetic task, tiny random backbone)")
    if res.baseline is not None:
        console.print(f"static fer baseline on the same clips: UAR {100 * res.baseline['uar']:.2f}%  "
                      f"WAR {100 * res.baseline['war']:.2f}%")
    console.print(f"report: {res.report_html}  ({res.report_md.name} beside it); {total:.0f} s in all")
    return 0


if __name__ == "__main__":
    from finecliper.cli.main import main

    sys.exit(main(["demo", *sys.argv[1:]]))
