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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finecliper", description="Dynamic facial expression recognition with FineCLIPER.")
    parser.add_argument("--version", action="version", version=f"finecliper {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # not built yet
                continue
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run, _more=getattr(mod, "MORE_POSITIONALS", None))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # argparse stops a nargs="+" positional at the first option; a subcommand naming MORE_POSITIONALS takes
    # the positionals that follow its options too (`predict a.mp4 --out r.csv window_s=2`)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not getattr(args, "_more", None) or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        getattr(args, args._more).extend(extra)
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
