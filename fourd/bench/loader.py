"""Throughput of the training data loader alone (workers decoding or rendering clips, pinned, prefetched), the
raw decode limit of the same videos, and the clips per second a GPU would consume."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader, Dataset

from fourd.bench.timing import time_rounds
from fourd.data.clips import VideoClipDataset, sample_clip_indices
from fourd.data.video import read_clip

H100_BF16_DENSE_FLOPS = 989e12  # the datasheet's dense bf16 peak of an H100 SXM


def endless(loader: DataLoader) -> Iterator[dict]:
    """Batches of `loader`, epoch after epoch (persistent workers stay up)."""
    return itertools.chain.from_iterable(itertools.repeat(loader))


def loader_clips_per_s(
    loader: DataLoader,
    batches: int,
    warmup: int,
    device: torch.device,
    on_device: Callable[[dict], dict] = lambda batch: batch,
) -> float:
    """Clips per second over `batches` batches after `warmup` (worker start-up), each moved to `device` as Lightning
    moves training batches, then passed through `on_device` there (a data module's `on_after_batch_transfer`: the
    crops of `augment=device`)."""
    stream = endless(loader)
    clips = []

    def fetch() -> None:
        clips.append(len(on_device(move_data_to_device(next(stream), device))["video"]))

    for _ in range(warmup):
        fetch()
    clips.clear()
    times = time_rounds({"loader": fetch}, batches, device, desc="loader")["loader"]
    return sum(clips) / sum(times)


class RawDecode(Dataset):
    """The frames of a clip of each video of a VideoClipDataset, decoded at full size with no transform: the
    decode limit that the loader works against (decord alone, as a user's own loop would call it)."""

    def __init__(self, clips: VideoClipDataset) -> None:
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = random.Random(index)
        c = self.clips
        frames = read_clip(
            c.videos[index], lambda length: sample_clip_indices(length, c.num_frames, c.stride, rng), c.backend
        )
        return {"video": torch.from_numpy(frames)[None]}  # one clip: its frames are all its decoding costs


def decode_limit_clips_per_s(
    clips: VideoClipDataset, items_per_batch: int, num_workers: int, batches: int, warmup: int
) -> float:
    """Clips per second of raw decoding (:class:`RawDecode`) with the same workers and batch of videos."""
    loader = DataLoader(
        RawDecode(clips),
        batch_size=items_per_batch,
        shuffle=True,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        collate_fn=lambda items: {"video": torch.cat([item["video"] for item in items])},
    )
    return loader_clips_per_s(loader, batches, warmup, torch.device("cpu"))


def gpu_demand_clips_per_s(train_flops_per_clip: float, mfu: float, peak_flops: float) -> float:
    """Clips per second a GPU consumes when it trains at `mfu` of `peak_flops`."""
    return mfu * peak_flops / train_flops_per_clip
