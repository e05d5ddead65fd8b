"""Lightning data module: any clip dataset -> shuffled, pinned, prefetched, resumable batches of uint8 video."""

from __future__ import annotations

import logging
from collections.abc import Sized
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, default_collate

from fourd.data.sampler import ResumableSampler, SeededItems
from fourd.data.transforms import crop_batch, pad_frames
from fourd.errors import ConfigError

log = logging.getLogger(__name__)


def collate_clips(items: list[dict[str, Any]]) -> dict[str, Any]:
    """default_collate, then the clips of repeated sampling ((B, k, C, T, H, W) videos) as B*k clips; items to be
    cropped on the device keep their frames, padded to the batch's largest (`pad_frames`), and (B, k, 5) crops."""
    if "frames" in items[0]:
        rest = default_collate([{k: v for k, v in item.items() if k != "frames"} for item in items])
        return {**rest, "frames": pad_frames([item["frames"] for item in items])}
    batch = default_collate(items)
    if batch["video"].dim() == 6:
        batch["video"] = batch["video"].flatten(0, 1)
    return batch


class VideoDataModule(L.LightningDataModule):
    """Wraps a dataset of {"video": uint8 (C, T, H, W), "skipped": int} items for training (items that skip videos
    also carry "index", see :meth:`unreadable`).

    Video decoding happens in the workers (datasets open files per item), never before they fork. A dataset with
    `repeats` = k (repeated sampling) gives k clips per item: a batch of `batch_size` clips reads batch_size / k
    items. A dataset with `augment="device"` hands over decoded frames and their crops, and the batch is cropped
    after it reaches the training device (:meth:`on_after_batch_transfer`).
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
        repeated_sampling: int = 1,
    ) -> None:
        super().__init__()
        repeats = getattr(dataset, "repeats", 1)
        if repeats != repeated_sampling:
            raise ConfigError(
                f"repeated_sampling={repeated_sampling}, but the dataset ({type(dataset).__name__}) makes {repeats} "
                "clips per video"
            )
        if batch_size % repeats:
            raise ConfigError(f"batch size {batch_size} is not a multiple of the clips per video ({repeats})")
        if isinstance(dataset, Sized) and len(dataset) < batch_size // repeats:
            raise ConfigError(f"dataset has {len(dataset)} videos, fewer than one batch of {batch_size // repeats}")
        self.dataset = dataset
        self.batch_size = batch_size
        self.items_per_batch = batch_size // repeats
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.seed = seed
        self.position: tuple[int, int] | None = None  # (epoch, clips consumed by this rank) after the last batch
        self._resume_at: tuple[int, int] | None = None

    def train_dataloader(self) -> DataLoader:
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        sampler = ResumableSampler(
            self.dataset, num_replicas=world, rank=rank, seed=self.seed, batch_size=self.items_per_batch
        )
        if len(sampler) < self.items_per_batch:
            raise ConfigError(
                f"dataset has {len(self.dataset)} videos: {len(sampler)} per rank over {world} ranks, "
                f"fewer than one batch of {self.items_per_batch}"
            )
        if self._resume_at is not None:
            sampler.resume(*self._resume_at)
        return self.loader(SeededItems(self.dataset, self.seed), sampler=sampler)

    def loader(self, dataset: Dataset, **options: Any) -> DataLoader:
        """Batches of `items_per_batch` items of `dataset`, in this module's workers, pinned and prefetched."""
        workers = self.num_workers > 0
        return DataLoader(
            dataset,
            batch_size=self.items_per_batch,
            collate_fn=collate_clips,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=workers,
            prefetch_factor=self.prefetch_factor if workers else None,
            **options,
        )

    def on_before_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Record the data position; the batch's bookkeeping becomes Python objects (epoch, first position, skipped
        videos, the names of the unreadable ones), so reading it on the device side costs no device-to-host sync."""
        epoch, first, last = int(batch["epoch"][0]), int(batch["position"][0]), int(batch["position"][-1])
        if self.trainer is not None and self.trainer.training:
            self.position = (epoch, last + 1)
        skipped = int(batch["skipped"].sum())
        return {**batch, "epoch": epoch, "position": first, "skipped": skipped, "unreadable": self.unreadable(batch)}

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """On the device: a batch of frames and crops becomes its uint8 "video" clips, all cropped at once."""
        if "frames" not in batch:
            return batch
        video = crop_batch(batch["frames"], batch["crops"], self.dataset.transform.size)
        return {**{k: v for k, v in batch.items() if k not in ("frames", "crops")}, "video": video}

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
            "items_per_batch": self.items_per_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        world = self.trainer.world_size if self.trainer else 1
        position = state["position"]
        saved_items = state.get("items_per_batch", state["batch_size"])
        if (state["world_size"], state["batch_size"], saved_items) != (world, self.batch_size, self.items_per_batch):
            clips_seen = position * state["world_size"] * (state["batch_size"] // saved_items)
            position = clips_seen // (world * (self.batch_size // self.items_per_batch))  # in another order
            log.warning(
                f"resuming with {world} ranks x batch {self.batch_size} ({self.items_per_batch} videos) instead of "
                f"{state['world_size']} x {state['batch_size']} ({saved_items} videos): the epoch continues after "
                "the same number of clips, but the clip order differs from an uninterrupted run"
            )
        self._resume_at = (state["epoch"], position)


class StreamDataModule(VideoDataModule):
    """:class:`VideoDataModule` for streamed datasets (:class:`fourd.data.shards.ShardClipDataset`): the dataset deals
    its shards to (rank, worker) streams itself; the checkpoint records how far each stream got and how many
    batches the epoch has had, so a resumed run continues every stream, workers taking turns as before."""

    def __init__(self, dataset: IterableDataset, **kwargs: Any) -> None:
        super().__init__(dataset, **kwargs)
        self.epoch, self.batches, self.streams = 0, 0, {}  # this epoch: batches consumed, stream -> (shard, sample)

    def train_dataloader(self) -> DataLoader:
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        self.dataset.distribute(rank, world)
        return self.loader(self.dataset)

    def on_before_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Record how far the batch's stream got; "position" (which seeds the masks) counts the epoch's items."""
        epoch = int(batch["epoch"][0])
        if epoch != self.epoch:
            self.epoch, self.batches, self.streams = epoch, 0, {}
        position = self.batches * self.items_per_batch
        if self.trainer is None or self.trainer.training:
            self.streams[int(batch["stream"][0])] = (int(batch["shard"][-1]), int(batch["sample"][-1]) + 1)
            self.batches += 1
        skipped = int(batch["skipped"].sum())  # the workers warn with the names of the samples they skip
        return {**batch, "epoch": epoch, "position": position, "skipped": skipped, "unreadable": []}

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "batches": self.batches,
            "streams": {str(k): list(v) for k, v in self.streams.items()},
            "world_size": self.trainer.world_size if self.trainer else 1,
            "num_workers": self.num_workers,
            "items_per_batch": self.items_per_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        world = self.trainer.world_size if self.trainer else 1
        layout = (state["world_size"], state["num_workers"], state["items_per_batch"])
        if layout != (world, self.num_workers, self.items_per_batch):
            log.warning(
                f"resuming with {world} ranks x {self.num_workers} workers x {self.items_per_batch} videos instead of "
                f"{' x '.join(map(str, layout))}: the shards are dealt out differently, so epoch {state['epoch']} "
                "starts again from its first sample"
            )
            self.epoch = state["epoch"]
            self.dataset.resume(state["epoch"], {}, 0)
            return
        self.epoch, self.batches = state["epoch"], state["batches"]
        self.streams = {int(k): tuple(v) for k, v in state["streams"].items()}
        self.dataset.resume(self.epoch, self.streams, self.batches % max(self.num_workers, 1))


def data_module(dataset: Dataset, **kwargs: Any) -> VideoDataModule:
    """The data module for `dataset`: streamed (an IterableDataset, e.g. tar shards) or indexed."""
    return (StreamDataModule if isinstance(dataset, IterableDataset) else VideoDataModule)(dataset, **kwargs)
