"""Shared test helpers: paths, the official JAX fixtures, small videos, fault injection."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("FOURD_FIXTURES", REPO.parent / "shared" / "fixtures"))


def load_fixture_pair(fixtures_dir: Path, strong: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The official random weights and their inputs and outputs (the 'strong' pair has 10x larger weights)."""
    suffix = "_strong" if strong else ""
    params = dict(np.load(fixtures_dir / "r4d_tiny" / f"params{suffix}.npz"))
    io = dict(np.load(fixtures_dir / "r4d_tiny" / f"inputs_outputs{suffix}.npz"))
    return params, io
