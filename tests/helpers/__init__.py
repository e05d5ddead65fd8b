"""Shared test helpers: paths, the official JAX fixtures, what a job must not print, small videos, fault injection."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("FOURD_FIXTURES", REPO.parent / "shared" / "fixtures"))
# what a fourd job must not print: Lightning's device lines and litlogger tip, torch's LeafSpec warning from inside
# Lightning (fourd/quiet.py), Lightning's model summary (trainer.enable_model_summary: false)
SILENCED = ("GPU available:", "TPU available:", "litlogger", "LeafSpec", "Total params", "Total Flops")


def assert_quiet(output: str) -> None:
    """The output of a fourd job holds none of SILENCED."""
    printed = [s for s in SILENCED if s in output]
    assert printed == [], f"printed {printed}:\n{output[-5000:]}"


def load_fixture_pair(fixtures_dir: Path, strong: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The official random weights and their inputs and outputs (the 'strong' pair has 10x larger weights)."""
    suffix = "_strong" if strong else ""
    params = dict(np.load(fixtures_dir / "r4d_tiny" / f"params{suffix}.npz"))
    io = dict(np.load(fixtures_dir / "r4d_tiny" / f"inputs_outputs{suffix}.npz"))
    return params, io
