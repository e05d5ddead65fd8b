"""A split as tensors in memory: its targets stacked once, the frozen backbone's features computed once, both
cached on disk, so that repeated probes, seeds and sweeps never decode a clip or run the encoder again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fourd.files import atomic_write
from fourd.probe.backbones import Backbone

log = logging.getLogger(__name__)
NOT_TARGETS = ("video", "features", "skipped")


@torch.no_grad()
def compute_features(
    backbone: Backbone, dataset: Dataset, readout_depth: float, batch_size: int = 16, device: str = "cpu"
) -> torch.Tensor:
    """Readout inputs (N, T, h*w, D) of every clip, in float16, with a progress bar."""
    backbone.to(device)
    chunks = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc=f"features of {backbone.name}", unit="batch"):
        chunks.append(backbone.features(batch["video"].to(device), readout_depth).half().cpu())
    return torch.cat(chunks)


def stack_targets(dataset: Dataset) -> dict[str, torch.Tensor]:
    """Every ground-truth tensor of every clip (all but the video), stacked: (N, ...) per key."""
    items = [dataset[i] for i in tqdm(range(len(dataset)), desc="targets", unit="clip")]
    keys = [k for k, v in items[0].items() if k not in NOT_TARGETS and torch.is_tensor(v)]
    return {k: torch.stack([item[k] for item in items]) for k in keys}


def cached(path: Path, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Tensors from `path`, or computed once and written atomically."""
    if path.exists():
        return load_file(str(path))
    tensors = {k: v.contiguous() for k, v in compute().items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp))
    log.info(f"cached {', '.join(f'{k} {tuple(v.shape)}' for k, v in tensors.items())} at {path}")
    return tensors


class TensorSplit(Dataset):
    """Items {key: tensors[key][index]} of stacked tensors (targets, and "features" where a backbone reads)."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        sizes = {len(v) for v in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"tensors of different lengths: { {k: len(v) for k, v in tensors.items()} }")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {k: v[index] for k, v in self.tensors.items()}
