"""Optional parts of finecliper, installed as extras: ``pip install 'finecliper[llava]'``.

Each extra names the modules it brings and what they add. Code that needs one calls ``require`` first,
so a missing extra is one line that names it, never an ImportError deep inside a library.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Extra:
    distributions: tuple[str, ...]  # what pip installs (and importlib.metadata knows)
    modules: tuple[str, ...]        # what Python imports
    adds: str


EXTRAS = {
    "llava": Extra(("accelerate",), ("accelerate",),
                   "Video-LLaVA descriptions (`finecliper describe --backend video-llava`): the 7B model is "
                   "loaded straight onto the GPU in bf16"),
    "dev": Extra(("pytest", "pytest-timeout", "build"), ("pytest", "pytest_timeout", "build"),
                 "the test suite (`make test`) and wheel builds"),
}


class MissingExtra(ImportError):
    """A feature whose optional packages are not installed."""


def missing_modules(name: str) -> list[str]:
    return [m for m in EXTRAS[name].modules if importlib.util.find_spec(m) is None]


def require(name: str, feature: str) -> None:
    """Raise ``MissingExtra`` naming ``finecliper[name]`` when any of its modules is missing."""
    missing = missing_modules(name)
    if missing:
        raise MissingExtra(f"{feature} needs the optional extra finecliper[{name}] ({', '.join(missing)} missing): "
                           f"pip install 'finecliper[{name}]'")


def dist_version(dist: str) -> str | None:
    """The installed version of a distribution (None: not installed)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def installed_versions(name: str) -> dict[str, str | None]:
    """Each distribution of an extra and its installed version (None: not installed)."""
    return {dist: dist_version(dist) for dist in EXTRAS[name].distributions}


def status_lines() -> list[str]:
    """One line per extra: installed (with versions) or what is missing and the command that adds it."""
    lines = []
    for name, extra in EXTRAS.items():
        versions = installed_versions(name)
        missing = [d for d, v in versions.items() if v is None]
        state = ("installed (" + ", ".join(f"{d} {v}" for d, v in versions.items()) + ")" if not missing else
                 f"not installed: pip install 'finecliper[{name}]'")
        lines.append(f"finecliper[{name}]: {state}; adds {extra.adds}")
    return lines
