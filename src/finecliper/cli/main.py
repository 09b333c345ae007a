"""The ``finecliper`` command: one subcommand per module in ``finecliper.cli``.

Each subcommand module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
they import heavy libraries inside ``run`` so that ``finecliper --help`` stays instant.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys

from finecliper import __version__

# name -> module; the order is the order of `finecliper --help`.
COMMANDS = {
    "demo": "finecliper.cli.demo",
    "predict": "finecliper.cli.predict",
    "prepare": "finecliper.cli.prepare",
    "extract": "finecliper.cli.extract",
    "describe": "finecliper.cli.describe",
    "train": "finecliper.cli.train",
    "evaluate": "finecliper.cli.evaluate",
    "ablate": "finecliper.cli.ablate",
    "push": "finecliper.cli.push",
    "info": "finecliper.cli.info",
    "config": "finecliper.cli.config",
}


# what an OS error means for the user, by errno (the rest print the system's own words)
OS_HINTS = {
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere (out=DIR)",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere (out=DIR)",
    errno.EROFS: "read-only file system; write elsewhere (out=DIR)",
    errno.EACCES: "permission denied; write elsewhere (out=DIR) or fix the folder's permissions",
    errno.EPERM: "operation not permitted; write elsewhere (out=DIR) or fix the folder's permissions",
    errno.ENOTDIR: "a file is in the way where a folder is expected; remove it or choose another path",
    errno.EEXIST: "a file is in the way where a folder is expected; remove it or choose another path",
}


def os_error_line(e: OSError) -> str:
    """``error: PATH: reason`` (the path the system named, and what to do)."""
    reason = OS_HINTS.get(e.errno, e.strerror or str(e))
    return f"error: {e.filename}: {reason}" if e.filename else f"error: {reason}"


class Parser(argparse.ArgumentParser):
    """argparse, with a usage mistake told in one line (and where the help is) instead of the usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="finecliper", description="Dynamic facial expression recognition with FineCLIPER.")
    parser.add_argument("--version", action="version", version=f"finecliper {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.commands = sub.choices  # type: ignore[attr-defined]  (name -> subparser, for error messages)
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # not built yet
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _more=getattr(mod, "MORE_POSITIONALS", "overrides"))
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse a command line; KEY=VALUE positionals may come before or after the options.

    argparse takes a positional list once, at its first place on the line; the rest of them, after the
    options, go to the subcommand's MORE_POSITIONALS list (``overrides`` unless it names another).
    """
    args, extra = parser.parse_known_args(argv)
    if extra:
        more = getattr(args, "_more", None)
        if not isinstance(getattr(args, more or "", None), list) or any(e.startswith("-") for e in extra):
            where = parser.commands.get(getattr(args, "command", None), parser)  # type: ignore[attr-defined]
            where.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, more).extend(extra)
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, read-only, a file where a folder should be, ...: the path and what to do
        if args.debug:
            raise
        print(os_error_line(e), file=sys.stderr)
        return 2
    except Exception as e:  # our own errors already say what is wrong and what to do: no traceback
        if args.debug or not type(e).__module__.startswith("finecliper"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
