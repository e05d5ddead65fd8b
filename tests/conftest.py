"""Session fixtures: the official JAX fixtures (skipped where absent) and a fixed seed per test."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import FIXTURES


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"official fixtures not found at {FIXTURES} (set FOURD_FIXTURES)")
    return FIXTURES


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
