"""Non-finite losses: skip the step and report it; stop with a clear message after K in a row."""

from __future__ import annotations

import logging

import torch

from fourd.errors import ConfigError, FourdError

log = logging.getLogger(__name__)


class NonFiniteLossError(FourdError, RuntimeError):
    """The loss was nan or inf for too many consecutive steps."""


class BadStepCounter:
    """Counts steps whose loss was not finite on some rank, in total and in a row."""

    def __init__(self, max_in_a_row: int = 10) -> None:
        if max_in_a_row < 1:
            raise ConfigError(f"max_bad_steps must be at least 1, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.total = 0
        self.in_a_row = 0
        self.last_finite: tuple[int, torch.Tensor] | None = None  # (step, loss)

    def update(self, finite: bool, step: int, loss: torch.Tensor) -> None:
        """Record one step; raises NonFiniteLossError on the K-th bad step in a row."""
        if finite:
            self.in_a_row = 0
            self.last_finite = (step, loss.detach())
            return
        self.total += 1
        self.in_a_row += 1
        log.warning(
            f"step {step}: loss is {loss.item()} (or non-finite on another rank): step skipped, "
            f"{self.in_a_row} in a row, {self.total} in total"
        )
        if self.in_a_row >= self.max_in_a_row:
            last = (
                f"the last finite loss was {self.last_finite[1].item():.4g} at step {self.last_finite[0]}"
                if self.last_finite
                else "no step had a finite loss"
            )
            raise NonFiniteLossError(
                f"the loss was nan or inf for {self.in_a_row} steps in a row (steps {step - self.in_a_row + 1} to "
                f"{step}); {last}. Stopping. Lower optimizer.base_lr, check the data, or raise max_bad_steps."
            )
