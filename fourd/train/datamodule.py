"""Lightning data module: any clip dataset -> shuffled, pinned, prefetched, resumable batches of uint8 video."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from fourd.data.sampler import ResumableSampler, SeededItems
from fourd.errors import ConfigError

log = logging.getLogger(__name__)


class VideoDataModule(L.LightningDataModule):
    """Wraps a dataset of {"video": uint8 (C, T, H, W), "skipped": int} items for training (items that skip videos
    also carry "index", see :meth:`unreadable`).

    Video decoding happens in the workers (datasets open files per item), never before they fork.
    The data position (epoch, clips consumed by each rank) is part of the checkpoint: a resumed run
    continues with the very next batch, with the same clips and the same random crops.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 8,
        num_workers: int = 0,
        prefetch_factor: int = 2,
        pin_memory: bool | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if len(dataset) < batch_size:
            raise ConfigError(f"dataset has {len(dataset)} clips, fewer than one batch of {batch_size}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.seed = seed
        self.position: tuple[int, int] | None = None  # (epoch, clips consumed by this rank) after the last batch
        self._resume_at: tuple[int, int] | None = None

    def train_dataloader(self) -> DataLoader:
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        sampler = ResumableSampler(
            self.dataset, num_replicas=world, rank=rank, seed=self.seed, batch_size=self.batch_size
        )
        if len(sampler) < self.batch_size:
            raise ConfigError(
                f"dataset has {len(self.dataset)} clips: {len(sampler)} per rank over {world} ranks, "
                f"fewer than one batch of {self.batch_size}"
            )
        if self._resume_at is not None:
            sampler.resume(*self._resume_at)
        workers = self.num_workers > 0
        return DataLoader(
            SeededItems(self.dataset, self.seed),
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=workers,
            prefetch_factor=self.prefetch_factor if workers else None,
        )

    def on_before_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Record the data position; the batch's bookkeeping becomes Python objects (epoch, first position, skipped
        videos, the names of the unreadable ones), so reading it on the device side costs no device-to-host sync."""
        epoch, first, last = int(batch["epoch"][0]), int(batch["position"][0]), int(batch["position"][-1])
        if self.trainer is not None and self.trainer.training:
            self.position = (epoch, last + 1)
        skipped = int(batch["skipped"].sum())
        return {**batch, "epoch": epoch, "position": first, "skipped": skipped, "unreadable": self.unreadable(batch)}

    def unreadable(self, batch: dict[str, Any]) -> list[str]:
        """The unreadable videos that the batch's items passed over: a dataset whose items skip some says which,
        by ``passed_over(index, skipped)`` (:class:`fourd.data.clips.VideoClipDataset`)."""
        skipped = batch["skipped"].tolist()
        if not any(skipped):
            return []
        items = zip(batch["index"].tolist(), skipped, strict=True)
        return [str(path) for index, count in items for path in self.dataset.passed_over(index, count)]

    def state_dict(self) -> dict[str, Any]:
        if self.position is None:
            return {}
        return {
            "epoch": self.position[0],
            "position": self.position[1],
            "world_size": self.trainer.world_size,
            "batch_size": self.batch_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        world = self.trainer.world_size if self.trainer else 1
        position = state["position"]
        if (state["world_size"], state["batch_size"]) != (world, self.batch_size):
            position = position * state["world_size"] // world  # same number of clips seen, in another order
            log.warning(
                f"resuming with {world} ranks x batch {self.batch_size} instead of {state['world_size']} x "
                f"{state['batch_size']}: the epoch continues after the same number of clips, but the clip "
                "order differs from an uninterrupted run"
            )
        self._resume_at = (state["epoch"], position)
