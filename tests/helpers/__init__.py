"""Shared test helpers: paths, the official JAX fixtures, what a job must not print, small videos, fault injection."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
# the official JAX fixtures ship in the repository; FOURD_FIXTURES may point to another copy of them
FIXTURES = Path(os.environ.get("FOURD_FIXTURES") or REPO / "tests" / "fixtures")
FIXTURE_SUMS = REPO / "tests" / "fixtures" / "SHA256SUMS"
# what a fourd job must not print: Lightning's device lines and litlogger tip, torch's LeafSpec warning from inside
# Lightning (fourd/quiet.py), Lightning's model summary (trainer.enable_model_summary: false)
SILENCED = ("GPU available:", "TPU available:", "litlogger", "LeafSpec", "Total params", "Total Flops", "ERROR opening")


def assert_quiet(output: str) -> None:
    """The output of a fourd job holds none of SILENCED."""
    printed = [s for s in SILENCED if s in output]
    assert printed == [], f"printed {printed}:\n{output[-5000:]}"


def fixtures_problem(folder: Path) -> str:
    """What keeps `folder` from being the fixtures FIXTURE_SUMS lists ('' when nothing): missing or changed files."""
    if not folder.is_dir():
        return "no such folder"
    if not FIXTURE_SUMS.is_file():
        return f"cannot check them: {FIXTURE_SUMS} is missing"
    sums = {name: digest for digest, name in (line.split(maxsplit=1) for line in FIXTURE_SUMS.read_text().splitlines())}
    missing = [name for name in sums if not (folder / name).is_file()]
    changed = [
        name
        for name, digest in sums.items()
        if name not in missing and hashlib.sha256((folder / name).read_bytes()).hexdigest() != digest
    ]
    problems = [f"{what} {', '.join(names)}" for what, names in (("missing", missing), ("changed", changed)) if names]
    return "; ".join(problems)


def load_fixture_pair(fixtures_dir: Path, strong: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The official random weights and their inputs and outputs (the 'strong' pair has 10x larger weights)."""
    suffix = "_strong" if strong else ""
    params = dict(np.load(fixtures_dir / "r4d_tiny" / f"params{suffix}.npz"))
    io = dict(np.load(fixtures_dir / "r4d_tiny" / f"inputs_outputs{suffix}.npz"))
    return params, io
