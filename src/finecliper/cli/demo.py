"""`finecliper demo`: generate a small synthetic expression dataset from shipped photos and run the whole pipeline."""
from __future__ import annotations

import argparse
import sys

from finecliper.cli import add_overrides, examples, print_error

HELP = ("Run the whole pipeline (generate -> prepare -> extract -> describe -> pretrain -> train -> evaluate -> ablation -> "
        "predict -> report) on a synthetic expression dataset animated from photos that ship offline; a tiny CLIP "
        "pre-trained here on the training faces (no labels).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo); re-running replaces its stages")
    p.add_argument("--quick", action="store_true",
                   help="the same stages at reduced sizes (QUICK in demo.run: 16 identities, fewer pre-training and "
                        "training epochs, no level ablation): about a minute on 2 cores; what the test suite runs")
    add_overrides(p, "demo", "identities=60 epochs=20 pretrain_epochs=0 ablation=false")
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
    backbone = ("a tiny CLIP PRE-TRAINED HERE, contrastively, on the training faces and their label-free descriptions "
                "(no labels, no held-out face), then frozen" if cfg.pretrain_epochs else "a tiny RANDOMLY INITIALISED CLIP")
    console.print(f"[bold yellow]finecliper demo: a SYNTHETIC task[/] (expressions animated from still photos) on "
                  f"{backbone}: it shows the pipeline works end to end, not real DFER accuracy.")
    try:
        res = run_demo(cfg, echo=console.print)
    except (DemoError, FileExistsError, ValueError) as e:
        print_error(e)
        return 1
    total = sum(s.seconds for s in res.stages)
    console.print(f"\n[bold]held-out identities ({res.n_test} clips): UAR {100 * res.uar:.2f}%  WAR {100 * res.war:.2f}%[/]"
                  f"  (chance 14.29%; synthetic task, tiny backbone)")
    console.print("each branch on its own, WAR: " + "  ".join(f"{m} {100 * w:.1f}%" for m, w in res.modality_war.items())
                  + "  (chance 14.3%)")
    for r in res.ablation:
        console.print(f"  {r['label']:<22} ({', '.join(r['modalities'])}): WAR {100 * r['war']:.1f}%")
    if res.baseline is not None:
        console.print(f"static fer baseline on the same clips: UAR {100 * res.baseline['uar']:.2f}%  "
                      f"WAR {100 * res.baseline['war']:.2f}%")
    console.print(f"report: {res.report_html}  ({res.report_md.name} beside it); {total:.0f} s in all")
    return 0


if __name__ == "__main__":
    from finecliper.cli.main import main

    sys.exit(main(["demo", *sys.argv[1:]]))
