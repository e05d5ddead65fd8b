"""Frozen-backbone features cached on disk, so repeated probes and sweeps never recompute the encoder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from fourd.files import atomic_write
from fourd.models.vit import SpaceTimeViT
from fourd.probe.module import readout_features

log = logging.getLogger(__name__)


@torch.no_grad()
def compute_features(
    encoder: SpaceTimeViT,
    dataset: Dataset,
    readout_depth: float,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Readout inputs (N, T, h*w, D) of every clip, in float16, with a progress bar."""
    encoder = encoder.to(device).eval()
    chunks = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="features", unit="batch"):
        chunks.append(readout_features(encoder, batch["video"].to(device), readout_depth).half().cpu())
    return torch.cat(chunks)


def cached_features(path: Path, compute: Any) -> torch.Tensor:
    """Load features from `path`, or compute them once and write them atomically."""
    if path.exists():
        log.info(f"features from cache {path}")
        return load_file(str(path))["features"]
    features = compute()
    atomic_write(path, lambda tmp: save_file({"features": features.contiguous()}, tmp))
    log.info(f"cached features {tuple(features.shape)} at {path}")
    return features


class FeatureDataset(Dataset):
    """A dataset's targets with precomputed "features" instead of its video."""

    def __init__(self, dataset: Dataset, features: torch.Tensor) -> None:
        if len(dataset) != len(features):
            raise ValueError(f"{len(features)} cached feature rows for a dataset of {len(dataset)} clips")
        self.dataset, self.features = dataset, features

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {k: v for k, v in self.dataset[index].items() if k != "video"}
        return {**item, "features": self.features[index]}
