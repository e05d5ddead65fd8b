"""Lightning data module: any clip dataset -> shuffled, pinned, prefetched batches of uint8 video."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset


class VideoDataModule(L.LightningDataModule):
    """Wraps a dataset of {"video": uint8 (C, T, H, W), "skipped": int} items for training.

    Video decoding happens in the workers (datasets open files per item), never before they fork.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 8, num_workers: int = 0,
                 prefetch_factor: int = 2, pin_memory: bool | None = None) -> None:
        super().__init__()
        if len(dataset) < batch_size:
            raise ValueError(f"dataset has {len(dataset)} clips, fewer than one batch of {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory

    def train_dataloader(self) -> DataLoader:
        workers = self.num_workers > 0
        return DataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=True, drop_last=True,
            num_workers=self.num_workers, pin_memory=self.pin_memory, persistent_workers=workers,
            prefetch_factor=self.prefetch_factor if workers else None,
        )
