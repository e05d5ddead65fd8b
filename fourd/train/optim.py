"""AdamW parameter groups and the batch-scaled learning rate (the schedule is fourd.schedule)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from fourd.errors import ConfigError

FUSED_DEVICES = ("cuda", "cpu")  # where build_adamw picks the fused kernel by default


@dataclass
class OptimConfig:
    base_lr: float = 1.5e-4  # at a global batch of 256 clips
    min_lr_ratio: float = 0.01
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 1000
    fused: bool | None = None  # None: fused on CUDA and CPU (torch >= 2.4), where the kernel exists

    def __post_init__(self) -> None:
        checks = {
            "base_lr": (self.base_lr, lambda v: v > 0, "a positive number"),
            "min_lr_ratio": (self.min_lr_ratio, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
            "weight_decay": (self.weight_decay, lambda v: v >= 0, "a number >= 0"),
            "warmup_steps": (self.warmup_steps, lambda v: v >= 0 and v == int(v), "a whole number >= 0"),
        }
        if len(self.betas) != 2:
            raise ConfigError(f"optimizer.betas={list(self.betas)} must be two numbers [beta1, beta2]")
        if not isinstance(self.fused, (bool, type(None))):
            raise ConfigError(f"optimizer.fused={self.fused!r} must be true, false or null (fused where it exists)")
        for index, beta in enumerate(self.betas):
            checks[f"betas[{index}]"] = (beta, lambda v: 0 <= v < 1, "a number in [0, 1)")
        for key, (value, valid, expected) in checks.items():
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not (number and valid(value)):
                raise ConfigError(f"optimizer.{key}={value!r} must be {expected}")


def scaled_lr(base_lr: float, global_batch: int) -> float:
    """Linear scaling rule: lr = base_lr * global_batch / 256."""
    return base_lr * global_batch / 256


def param_groups(model: nn.Module, weight_decay: float, no_decay_names: set[str]) -> list[dict]:
    """Decay matrices only: no weight decay on norms, biases (1-D) and the named embeddings."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 or name in no_decay_names else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_adamw(model: nn.Module, config: OptimConfig, lr: float, no_decay_names: set[str]) -> torch.optim.AdamW:
    """AdamW over `param_groups`; the fused kernel by default, also on CPU (docs/performance.md)."""
    fused = config.fused if config.fused is not None else next(model.parameters()).device.type in FUSED_DEVICES
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay, no_decay_names), lr=lr, betas=tuple(config.betas), fused=fused
    )
