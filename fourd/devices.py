"""The device a command computes on, from what the user asked for, and the launcher that started the process
(one rule for every command)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from fourd.errors import ConfigError

if TYPE_CHECKING:  # Lightning loads where a launcher is looked for, not for fourd.depth or fourd.extract
    from lightning.fabric.plugins.environments import ClusterEnvironment

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


def rank_device(requested: str | None = "auto") -> torch.device:
    """`compute_device`; a CUDA device without an index is, under a launcher, this process's local rank's."""
    device = compute_device(requested)
    if device.type == "cuda" and device.index is None:
        environment = cluster_environment()
        if environment is not None:
            return torch.device("cuda", environment.local_rank())
    return device


def cluster_environment() -> ClusterEnvironment | None:
    """The launcher's ranks, in Lightning's order (torchrun wins inside a SLURM allocation); on SLURM without
    Lightning's auto-requeue, since fourd's Preemption callback requeues. None when no launcher started us."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if TorchElasticEnvironment.detect():
        return TorchElasticEnvironment()
    if SLURMEnvironment.detect():
        return SLURMEnvironment(auto_requeue=False)
    return None
