"""Throughput of the training data loader alone: workers decoding or rendering clips, pinned, prefetched."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from fourd.bench.timing import time_rounds


def endless(loader: DataLoader) -> Iterator[dict]:
    """Batches of `loader`, epoch after epoch (persistent workers stay up)."""
    return itertools.chain.from_iterable(itertools.repeat(loader))


def loader_clips_per_s(loader: DataLoader, batches: int, warmup: int, device: torch.device) -> float:
    """Clips per second over `batches` batches after `warmup` (worker start-up), each copied to `device`."""
    stream = endless(loader)

    def fetch() -> None:
        video = next(stream)["video"]
        if device.type != "cpu":
            video.to(device, non_blocking=True)

    for _ in range(warmup):
        fetch()
    times = time_rounds({"loader": fetch}, batches, device, desc="loader")["loader"]
    return batches * loader.batch_size / sum(times)
