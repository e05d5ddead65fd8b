"""The learning-rate schedule of pretraining and probes: linear warmup, then cosine."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup from 0 to 1, then cosine down to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine_per_step(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_ratio: float
) -> dict[str, Any]:
    """Lightning's `lr_scheduler` entry for `warmup_cosine` stepped every optimizer step; the warmup takes at most
    half of a short run."""
    schedule = partial(
        warmup_cosine,
        warmup_steps=min(warmup_steps, total_steps // 2 or 1),
        total_steps=total_steps,
        min_ratio=min_ratio,
    )
    return {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"}
