"""Typed dataclass configs, loaded from YAML and overridden from the command line.

Every area owns its dataclass next to its code (``ModelConfig`` in ``finecliper.model.config`` …);
this module only knows how to build one from defaults + a YAML file + ``key=value`` overrides,
validated against the dataclass types by OmegaConf.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override that does not fit the dataclass it is meant for."""


def load_config(cls: type[T], path: str | Path | None = None, overrides: Iterable[str] = ()) -> T:
    """Defaults of ``cls``, then the YAML file at ``path``, then ``a.b=value`` overrides."""
    base = OmegaConf.structured(cls)
    layers = []
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            layers.append(OmegaConf.create(yaml.safe_load(path.read_text()) or {}))
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from e
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
