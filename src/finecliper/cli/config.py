"""``finecliper config``: the shipped configs, and every key of a subcommand's config with its default and meaning."""
from __future__ import annotations

import argparse

from finecliper.cli import examples

HELP = "List the shipped configs, or print every key of a config with its value and meaning (as YAML to edit)."
# Which dataclass each subcommand's KEY=VALUE overrides and --config YAML fill (module, class).
CONFIG_CLASSES = {
    "train": ("finecliper.train.config", "ExperimentConfig"),
    "evaluate": ("finecliper.train.config", "ExperimentConfig"),
    "ablate": ("finecliper.train.config", "ExperimentConfig"),
    "extract": ("finecliper.face.extract", "ExtractConfig"),
    "predict": ("finecliper.predict.pipeline", "PredictConfig"),
    "demo": ("finecliper.demo.run", "DemoConfig"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    examples(p, "finecliper config list",
             "finecliper config show dfew                                # the DFEW paper settings, every key explained",
             "finecliper config show dfew model.variant=star > my.yaml   # a file to edit; then --config my.yaml",
             "finecliper config show --for extract                       # the keys extract takes as KEY=VALUE")
    p.add_argument("action", choices=("list", "show"), help="list: the shipped configs; show: every key of one")
    p.add_argument("name", nargs="?", default=None,
                   help="a shipped config (dfew, ferv39k, mafw) or a YAML file; omitted: the defaults")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides applied before printing, e.g. train.epochs=5")
    p.add_argument("--for", dest="command", default="train", choices=sorted(CONFIG_CLASSES),
                   help="whose config to show (default train: the experiment config of train/evaluate/ablate)")


def run(args: argparse.Namespace) -> int:
    import importlib

    from finecliper.config import bundled_configs, commented_yaml, load_config

    if args.action == "list":
        for name, first_line in bundled_configs().items():
            print(f"{name:<9} {first_line}")
        print("show one with `finecliper config show NAME`; use it with `finecliper train --config NAME`")
        return 0
    overrides = list(args.overrides)
    name = args.name
    if name is not None and "=" in name:  # `config show key=value`: an override, not a config name
        name, overrides = None, [name, *overrides]
    module, cls = CONFIG_CLASSES[args.command]
    cfg = load_config(getattr(importlib.import_module(module), cls), name, overrides)
    print(commented_yaml(cfg), end="")
    return 0
