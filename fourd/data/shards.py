"""Clips from WebDataset tar shards in the layout video2dataset writes (`NNNNN.mp4` + `NNNNN.json` per sample),
streamed with the webdataset library.

Each epoch the shards are shuffled (by seed and epoch) and dealt out to streams, one stream per (rank, worker): every
sample is read exactly once per epoch across ranks and workers. Every item says which stream, shard and sample it
came from, so a checkpoint records how far each stream got and a resumed run continues each stream from its next
sample, with the workers' turns in the same order as in an uninterrupted run. Corrupt samples are skipped, warned
about and counted.
"""

from __future__ import annotations

import random
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from fourd.data.clips import sample_clip_indices
from fourd.data.sampler import isolated_rngs, item_seed
from fourd.data.transforms import ClipTransform, check_augment
from fourd.data.video import VIDEO_EXTENSIONS, VideoReadError, read_clip

Progress = dict[int, tuple[int, int]]  # stream -> (shard position in the stream's list, samples read of that shard)


SCRATCH = Path("/dev/shm") if Path("/dev/shm").is_dir() else None  # the decoders read files: keep them in memory


def video_of(sample: dict[str, Any]) -> tuple[str, bytes]:
    """(extension, bytes) of the sample's video file: the first of its keys that is a video extension."""
    for ext in VIDEO_EXTENSIONS:
        if ext[1:] in sample:
            return ext, sample[ext[1:]]
    raise KeyError(f"no video ({', '.join(VIDEO_EXTENSIONS)}) among {sorted(k for k in sample if k[0] != '_')}")


class ShardClipDataset(IterableDataset):
    """Clips {"video": uint8 (C, T, size, size), "skipped", "epoch", "stream", "shard", "sample"} from tar shards.

    `urls`: a brace pattern (`/data/shards/{00000..01023}.tar`) or a list, local paths or anything webdataset
    opens. `repeats`, `decode_short_side` and `augment` as in :class:`fourd.data.clips.VideoClipDataset`."""

    def __init__(
        self,
        urls: str | list[str],
        num_frames: int = 16,
        stride: int = 2,
        size: int = 224,
        train: bool = True,
        repeats: int = 1,
        decode_short_side: int | None = None,
        seed: int = 0,
        backend: str | None = None,
        augment: str = "workers",
    ) -> None:
        self.shards = wds.shardlists.expand_urls(urls) if isinstance(urls, str) else list(urls)
        if not self.shards:
            raise ValueError(f"no shards in {urls!r}")
        self.num_frames, self.stride, self.train = num_frames, stride, train
        self.repeats, self.decode_short_side = repeats, decode_short_side
        self.seed, self.backend, self.augment = seed, backend, check_augment(augment)
        self.transform = ClipTransform(size, train=train)
        self.rank, self.world = 0, 1
        self.start_epoch = 0
        self.start: Progress = {}
        self.turn = 0  # the worker whose batch comes first (a resumed epoch starts with the same worker's turn)
        self.passes = 0  # epochs this copy (a worker's) has started

    def distribute(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def resume(self, epoch: int, progress: Progress, turn: int) -> None:
        """Continue `epoch` with each stream after the samples in `progress`, `turn` being the next worker's."""
        self.start_epoch, self.start, self.turn = epoch, dict(progress), turn

    def shards_of(self, epoch: int, stream: int, streams: int) -> list[int]:
        """The shards of one stream in one epoch: every shard belongs to exactly one stream."""
        order = list(range(len(self.shards)))
        random.Random(item_seed(self.seed, epoch)).shuffle(order)
        return order[stream::streams]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        epoch = self.start_epoch + self.passes
        resumed = self.passes == 0
        self.passes += 1
        local = (worker + self.turn) % workers if resumed else worker  # the stream this worker plays this epoch
        stream, streams = self.rank * workers + local, self.world * workers
        first_shard, first_sample = self.start.get(stream, (0, 0)) if resumed else (0, 0)
        skipped = 0
        for position, shard in enumerate(self.shards_of(epoch, stream, streams)):
            if position < first_shard:
                continue
            samples = wds.tarfile_samples([{"url": self.shards[shard]}], handler=wds.warn_and_continue)
            for index, sample in enumerate(samples):
                if position == first_shard and index < first_sample:
                    continue
                try:
                    clips = self.clips(sample, item_seed(self.seed, epoch, shard, index))
                except (KeyError, VideoReadError) as error:
                    warnings.warn(f"skipping unreadable sample {sample.get('__key__')} of {self.shards[shard]}: "
                                  f"{error}", stacklevel=1)  # fmt: skip
                    skipped += 1
                    continue
                yield {**clips, "skipped": skipped, "epoch": epoch, "stream": stream, "shard": position,
                       "sample": index}  # fmt: skip
                skipped = 0

    def clips(self, sample: dict[str, Any], seed: int) -> dict[str, torch.Tensor]:
        """The sample's clip (or `repeats` clips, see `ClipTransform.clips`), its randomness drawn from `seed`."""
        ext, data = video_of(sample)
        rng = random.Random(seed) if self.train else None
        with tempfile.NamedTemporaryFile(suffix=ext, dir=SCRATCH) as file:
            file.write(data)
            file.flush()
            frames = read_clip(
                file.name,
                lambda length: sample_clip_indices(length, self.num_frames, self.stride, rng),
                self.backend,
                self.decode_short_side,
            )
        with isolated_rngs(seed):  # the crops and flips
            return self.transform.clips(torch.from_numpy(frames), self.repeats, self.augment)
