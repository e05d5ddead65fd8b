"""Shared test helpers: the official JAX fixtures and small models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(os.environ.get("FOURD_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"official fixtures not found at {FIXTURES} (set FOURD_FIXTURES)")
    return FIXTURES


def load_fixture_pair(fixtures_dir: Path, strong: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    suffix = "_strong" if strong else ""
    params = dict(np.load(fixtures_dir / "r4d_tiny" / f"params{suffix}.npz"))
    io = dict(np.load(fixtures_dir / "r4d_tiny" / f"inputs_outputs{suffix}.npz"))
    return params, io


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
