import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout (CI clones the project with shared/ beside it)."""
    path = REPO.parent / "shared"
    if not (path / "data" / "annotations").is_dir():
        pytest.fail(f"shared annotations not found at {path}/data/annotations (they sit beside the checkout)")
    return path


@pytest.fixture(scope="session")
def annotations_dir(shared_dir) -> Path:
    return shared_dir / "data" / "annotations"
