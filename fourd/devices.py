"""The device a command computes on, from what the user asked for (one rule for every command)."""

from __future__ import annotations

import torch

from fourd.errors import ConfigError

CHOICES = "auto, cpu, gpu, cuda or cuda:N"


def compute_device(requested: str | None = "auto") -> torch.device:
    """'auto' (or None): the first CUDA device if there is one, else the CPU; 'cpu'; 'gpu' or 'cuda[:N]': that
    CUDA device, which must exist."""
    name = "auto" if requested in (None, "") else str(requested).lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "gpu" or name == "cuda" or name.startswith("cuda:"):
        try:
            device = torch.device("cuda" if name == "gpu" else name)
        except RuntimeError:
            raise ConfigError(f"unknown device {requested!r}; choose {CHOICES}") from None
        if not torch.cuda.is_available():
            raise ConfigError(f"device {requested!r} asked for, but this machine has no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA devices")
        return device
    raise ConfigError(f"unknown device {requested!r}; choose {CHOICES}")
