"""One module per ``finecliper`` subcommand (see ``cli.main``), and the grammar they share.

Every subcommand reads the same way: options (``--out PATH``), config overrides as bare ``KEY=VALUE``
positionals anywhere on the line (``train.epochs=5``; ``finecliper config show --for CMD`` lists the keys),
``--folds all|K[,K...]`` where folds apply, and a ``--help`` that ends with real examples.
"""
from __future__ import annotations

import argparse
import sys

from finecliper.data.labels import num_folds


class UsageError(ValueError):
    """A command line that cannot work (printed as one ``error:`` line, exit code 2)."""


def print_error(message: object) -> None:
    """``error: ...`` on stderr, one line however long (a terminal-width wrap would split it)."""
    print(f"error: {message}", file=sys.stderr)


def examples(p: argparse.ArgumentParser, *lines: str) -> None:
    """End the subcommand's ``--help`` with these example command lines."""
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_overrides(p: argparse.ArgumentParser, command: str, example: str) -> None:
    """The ``KEY=VALUE`` positionals (config overrides), accepted before or after the options."""
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help=f"config overrides, e.g. {example} (every key: `finecliper config show --for {command}`)")


def add_folds(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--folds", "--fold", dest="folds", default=None, metavar="all|K[,K...]",
                   help=f"'all' or comma-separated fold numbers (default: {default}; FERV39k has one split)")


def parse_folds(spec: str | None, dataset: str, default: int | None) -> list[int]:
    """``--folds`` as fold numbers of ``dataset``; ``None`` gives ``[default]`` (or every fold if no default)."""
    n = num_folds(dataset)
    if spec is None:
        return [default] if default is not None else list(range(1, n + 1))
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
