"""The global random generator states of every rank, for checkpoints that resume exactly."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from fourd.distributed import gather_objects


def rng_states() -> dict[str, Any]:
    """python, numpy, torch CPU and (if present) CUDA generator states, in checkpoint-safe types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's generator states, in rank order (a collective)."""
    return gather_objects(rng_states())
