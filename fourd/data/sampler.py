"""Resumable sampling: the clip order and every clip's randomness depend only on (seed, epoch, index).

A run killed at any step and resumed therefore sees exactly the clips, crops and flips that an
uninterrupted run sees, whatever the number of workers or how far they had prefetched.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, get_worker_info


class SampleKey(NamedTuple):
    """One draw of the sampler: which item, in which epoch, at which place of this rank's stream."""

    epoch: int
    position: int
    index: int


def item_seed(*parts: int) -> int:
    """A well-mixed 64-bit seed from integers (numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 32 | int(state[1])


def seed_all(seed: int) -> None:
    """Seed python, numpy and torch global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def isolated_rngs(seed: int) -> Iterator[None]:
    """Seed the global generators inside the block and restore the caller's states after it."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        seed_all(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (shuffled per epoch, sharded over ranks, tail dropped) that yields SampleKeys
    and can start an epoch part-way, at the position where a checkpointed run stopped.

    It subclasses DistributedSampler so Lightning leaves it in place instead of wrapping it.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0, batch_size: int = 1
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size  # the loader drops an incomplete last batch
        self._start: tuple[int, int] | None = None

    def resume(self, epoch: int, position: int) -> None:
        """The next pass over `epoch` starts at `position` (items already consumed by this rank).

        An epoch with no full batch left resumes as the start of the next one, as Lightning counts it.
        """
        if self.num_samples - position < self.batch_size:
            epoch, position = epoch + 1, 0
        self.set_epoch(epoch)
        self._start = (epoch, position)

    def __iter__(self) -> Iterator[SampleKey]:
        indices = list(super().__iter__())
        start = self._start[1] if self._start and self._start[0] == self.epoch else 0
        self._start = None
        for position in range(start, len(indices)):
            yield SampleKey(self.epoch, position, indices[position])


class KeyedItems(Dataset):
    """Reads `dataset[key.index]` for a sampler's keys, each item tagged with its epoch and stream position (for a
    dataset without randomness, e.g. stored features)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def read(self, key: SampleKey) -> dict[str, Any]:
        return self.dataset[key.index]

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        return {**self.read(key), "epoch": key.epoch, "position": key.position}


class SeededItems(KeyedItems):
    """KeyedItems read with the global generators seeded from (seed, epoch, index), so random crops, flips and
    clip starts are reproducible.

    In a worker process the worker's generators are simply reseeded; in the main process (no workers)
    the caller's generator states are restored afterwards.
    """

    def __init__(self, dataset: Dataset, seed: int = 0) -> None:
        super().__init__(dataset)
        self.seed = seed

    def read(self, key: SampleKey) -> dict[str, Any]:
        seed = item_seed(self.seed, key.epoch, key.index)
        if get_worker_info() is not None:
            seed_all(seed)
            return self.dataset[key.index]
        with isolated_rngs(seed):
            return self.dataset[key.index]
