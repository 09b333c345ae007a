"""Typed dataclass configs, loaded from YAML and overridden from the command line.

Every area owns its dataclass next to its code (``ModelConfig`` in ``finecliper.model.config`` …);
this module only knows how to build one from defaults + a YAML file (a path, or the name of a config
shipped in ``finecliper/configs``: ``dfew``, ``ferv39k``, ``mafw``) + ``key=value`` overrides, validated
against the dataclass types by OmegaConf, and how to show every key with its default and meaning
(the comment beside the field in its dataclass is its documentation).
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the dataclass it is meant for."""


def bundled_configs() -> dict[str, str]:
    """The configs shipped in the package: name -> its first comment line."""
    out = {}
    for item in sorted(resources.files("finecliper").joinpath("configs").iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            lines = item.read_text(encoding="utf-8").splitlines()
            out[item.name[:-len(".yaml")]] = lines[0].lstrip("# ").strip() if lines else ""
    return out


def read_config_text(name_or_path: str | Path) -> tuple[str, str]:
    """(where, YAML text) of a config file, or of a shipped config named ``dfew`` / ``dfew.yaml``."""
    path = Path(name_or_path)
    if path.is_file():
        return str(path), path.read_text(encoding="utf-8")
    name = path.name[:-len(".yaml")] if path.name.endswith(".yaml") else path.name
    item = resources.files("finecliper").joinpath("configs", f"{name}.yaml")
    if path.parent == Path(".") and item.is_file():
        return f"finecliper/configs/{name}.yaml", item.read_text(encoding="utf-8")
    raise ConfigError(f"config file not found: {name_or_path} (shipped configs: {', '.join(bundled_configs())}; "
                      f"`finecliper config show NAME` prints one)")


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Defaults of ``cls``, then the YAML file (or shipped config) ``path``, then ``a.b=value`` overrides."""
    base = OmegaConf.structured(cls)
    layers = []
    if path is not None:
        where, text = read_config_text(path)
        try:
            layers.append(OmegaConf.create(yaml.safe_load(text) or {}))
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: not valid YAML: {e}") from e
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. train.epochs=5)")
    if overrides:
        layers.append(OmegaConf.from_dotlist(overrides))
    try:
        merged = OmegaConf.merge(base, *layers)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        where = f" (from {path})" if path else ""
        raise ConfigError(f"invalid config{where}: {e}".split("\n    full_key")[0]) from e


def to_dict(cfg: Any) -> dict:
    """A plain dict of a dataclass config (for YAML/JSON dumps)."""
    return dataclasses.asdict(cfg)


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_dict(cls: type[T], data: dict) -> T:
    """Rebuild a config from a dict written by :func:`to_dict` (checked against ``cls``)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.create(data)))  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise ConfigError(f"config does not fit {cls.__name__}: {e}") from e


# ----------------------------------------------------------------------------- every key and its meaning

def field_meanings(cls: type) -> dict[str, str]:
    """The comment beside (or just above) each field of a dataclass, read from its source."""
    src = textwrap.dedent(inspect.getsource(cls))
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT]
    comments = {t.start[0]: t.string.lstrip("#").strip() for t in tokens}
    column = {t.start[0]: t.start[1] for t in tokens}
    lines = src.splitlines()

    def whole_line(n: int) -> bool:
        return n in comments and lines[n - 1].lstrip().startswith("#")

    out, continued = {}, set()
    for node in ast.parse(src).body[0].body:  # type: ignore[attr-defined]
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            end = node.end_lineno
            if end in comments:  # a comment beside the field, continued on lines below in its column
                text, n = [comments[end]], end + 1
                while whole_line(n) and column[n] == column[end]:
                    text.append(comments[n])
                    continued.add(n)
                    n += 1
            else:  # a block of whole-line comments just above the field
                text, n = [], node.lineno - 1
                while whole_line(n) and n not in continued:
                    text.insert(0, comments[n])
                    n -= 1
            out[node.target.id] = " ".join(text)
    return out


def describe_keys(cfg: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, value, meaning) of every leaf of a dataclass config, nested configs expanded."""
    meanings = field_meanings(type(cfg))
    hints = typing.get_type_hints(type(cfg))
    rows: list[tuple[str, Any, str]] = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(hints.get(f.name)) and dataclasses.is_dataclass(value):
            rows.append((prefix + f.name, None, meanings.get(f.name, "")))
            rows += describe_keys(value, prefix + f.name + ".")
        else:
            rows.append((prefix + f.name, value, meanings.get(f.name, "")))
    return rows


def commented_yaml(cfg: Any) -> str:
    """The config as YAML, every key with its meaning as a comment (a file ``load_config`` reads back)."""
    rows = describe_keys(cfg)
    body = []
    for key, value, meaning in rows:
        depth = key.count(".")
        name = key.rsplit(".", 1)[-1]
        text = f"{'  ' * depth}{name}:"
        if value is not None or not any(k.startswith(key + ".") for k, _, _ in rows):
            text += " " + yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
        body.append((text, meaning))
    width = min(56, max(len(t) for t, _ in body) + 2)
    return "\n".join(f"{t:<{width}}# {m}" if m else t for t, m in body) + "\n"
