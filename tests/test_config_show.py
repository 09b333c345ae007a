"""Shipped configs by name, and `finecliper config show`: every key with its value and meaning, as YAML to edit."""
import dataclasses
import importlib

import pytest
import yaml

from finecliper.cli.config import CONFIG_CLASSES
from finecliper.cli.main import main
from finecliper.config import ConfigError, bundled_configs, commented_yaml, describe_keys, field_meanings, load_config
from finecliper.train.config import ExperimentConfig


def test_shipped_configs_load_by_name_and_by_file_name():
    assert set(bundled_configs()) == {"dfew", "ferv39k", "mafw"}
    for name in bundled_configs():
        cfg = load_config(ExperimentConfig, name)
        assert cfg.data.dataset == name and cfg == load_config(ExperimentConfig, f"{name}.yaml")
    assert load_config(ExperimentConfig, "mafw", ["train.epochs=3"]).train.epochs == 3


def test_an_unknown_config_names_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"config file not found: nope \(shipped configs: dfew, ferv39k, mafw"):
        load_config(ExperimentConfig, "nope")


def test_a_file_beats_a_shipped_name(tmp_path, monkeypatch):
    (tmp_path / "dfew.yaml").write_text("train:\n  epochs: 2\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(ExperimentConfig, "dfew.yaml").train.epochs == 2  # the file in the working folder
    assert load_config(ExperimentConfig, "dfew").train.epochs == 30       # the shipped one by its bare name


def test_meanings_come_from_the_comments_beside_the_fields():
    @dataclasses.dataclass
    class Example:
        a: int = 1  # beside
        # above, first line
        # above, second line
        b: str = "x"
        c: float = 0.5  # beside, and
                        # continued below
        d: bool = False

    assert field_meanings(Example) == {"a": "beside", "b": "above, first line above, second line",
                                       "c": "beside, and continued below", "d": ""}


def test_config_show_prints_yaml_that_loads_back_to_the_same_config(tmp_path, capsys):
    assert main(["config", "show", "dfew", "model.variant=star", "train.epochs=4"]) == 0
    text = capsys.readouterr().out
    path = tmp_path / "my.yaml"
    path.write_text(text)
    assert yaml.safe_load(text)["model"]["variant"] == "star"
    assert load_config(ExperimentConfig, path) == load_config(ExperimentConfig, "dfew", ["model.variant=star", "train.epochs=4"])
    assert "lr: 0.001" in text and "# sgd | adamw" in text


@pytest.mark.parametrize("command", sorted(CONFIG_CLASSES))
def test_config_show_covers_every_key_of_each_subcommand(command, capsys):
    assert main(["config", "show", "--for", command]) == 0
    text = capsys.readouterr().out
    assert yaml.safe_load(text)  # valid YAML
    module, cls = CONFIG_CLASSES[command]
    rows = describe_keys(getattr(importlib.import_module(module), cls)())
    assert len(rows) == len(text.strip().splitlines())
    unexplained = [key for key, _, meaning in rows if not meaning.strip()]
    assert unexplained == [], f"finecliper config show --for {command}: keys without a meaning {unexplained}"


def test_config_list(capsys):
    assert main(["config", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[:3]] == ["dfew", "ferv39k", "mafw"]
