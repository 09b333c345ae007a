"""One command-line grammar: every subcommand documents each option, ends its --help with real examples,
takes KEY=VALUE overrides anywhere on the line, names folds one way, and reports a mistake in one line."""
import argparse

import pytest

from finecliper.cli import parse_folds
from finecliper.cli.main import COMMANDS, build_parser, main, parse


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def subparser(parser, name) -> argparse.ArgumentParser:
    return parser.commands[name]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_has_help(parser, name):
    p = subparser(parser, name)
    missing = [a.dest for a in p._actions if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert not missing, f"finecliper {name}: options without help: {missing}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_help_ends_with_real_examples(parser, name):
    text = subparser(parser, name).format_help()
    assert "examples:" in text, f"finecliper {name} --help has no examples"
    tail = text.split("examples:")[-1].strip().splitlines()
    commands = [line.strip() for line in tail if line.strip()]
    own = [c for c in commands if c.startswith(f"finecliper {name}") or f" -m finecliper.cli.main {name}" in c]
    assert 2 <= len(own) and len(commands) <= 4, commands
    # each example parses with this very parser (the part before any shell comment; no '...' placeholders)
    for c in commands:
        line = c.split("  #")[0].strip()
        if line.startswith("finecliper ") and "..." not in line:
            import shlex

            parse(parser, shlex.split(line)[1:])


@pytest.mark.parametrize("argv", [
    ["train", "a.b=1", "--folds", "1", "c=2"],
    ["evaluate", "a.b=1", "--folds", "1", "c=2"],
    ["extract", "--clips", "x", "a.b=1", "--out", "y", "c=2"],
    ["demo", "a.b=1", "--quick", "c=2"],
    ["info", "a.b=1", "--variant", "star", "c=2"],
])
def test_overrides_are_bare_key_values_before_or_after_the_options(parser, argv):
    assert parse(parser, argv).overrides == ["a.b=1", "c=2"]
    assert "--set" not in subparser(parser, argv[0]).format_help()


def test_predict_takes_videos_and_overrides_anywhere(parser):
    args = parse(parser, ["predict", "a.mp4", "--out", "r.csv", "window_s=2", "b.mp4"])
    assert args.inputs == ["a.mp4", "window_s=2", "b.mp4"] and args.out == "r.csv"


@pytest.mark.parametrize("name", ["prepare", "describe", "train", "evaluate"])
def test_folds_are_named_one_way(parser, name):
    p = subparser(parser, name)
    (action,) = [a for a in p._actions if "--folds" in a.option_strings]
    assert action.option_strings == ["--folds", "--fold"] and action.dest == "folds"


def test_folds_grammar():
    assert parse_folds("all", "dfew", 1) == [1, 2, 3, 4, 5]
    assert parse_folds(None, "dfew", 3) == [3] and parse_folds(None, "mafw", None) == [1, 2, 3, 4, 5]
    assert parse_folds("2,4", "mafw", 1) == [2, 4] and parse_folds("all", "ferv39k", 1) == [1]
    for bad in ("6", "x", "", "0"):
        with pytest.raises(ValueError, match="--folds"):
            parse_folds(bad, "dfew", 1)


@pytest.mark.parametrize("argv", [
    ["train", "--nope"],                       # argparse's own mistakes
    ["prepare", "--dataset", "dfew"],          # a required option missing
    ["extract", "--clips", "no/such/folder", "--out", "x"],   # ours, from a subcommand's run
    ["train", "--folds", "9", "data.dataset=dfew"],
    ["config", "show", "no-such-config"],
])
def test_a_mistake_is_one_line(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
