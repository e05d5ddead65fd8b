"""A split's features and targets on disk in chunks, written as they are computed and read back lazily.

Each chunk is one safetensors file of `chunk_clips` consecutive clips, written atomically. A run killed while
extracting resumes at the first missing chunk; runs sharing a cache (sweep jobs, ranks) claim chunks with an
advisory file lock (`<chunk>.claim`), so each chunk is computed once and the others wait for it. Reading
memory-maps the chunks: a probe's memory does not grow with its split (the pages are the page cache's).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from fourd.errors import ConfigError
from fourd.files import atomic_write, file_lock

log = logging.getLogger(__name__)
WAIT_POLL_S = 0.5


def chunk_name(index: int) -> str:
    return f"chunk_{index:06d}.safetensors"


def chunk_rows(path: Path) -> int | None:
    """The clips a chunk file holds, or None if it is missing or damaged (cut short, not safetensors)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            lengths = {f.get_slice(k).get_shape()[0] for k in f.keys()}
        return lengths.pop() if len(lengths) == 1 else None
    except Exception:  # a missing file, or safetensors' own errors for a damaged header or a short file
        return None


@dataclass(frozen=True)
class ChunkPlan:
    """How a split of `num_clips` clips is cut into chunks of `chunk_clips`."""

    num_clips: int
    chunk_clips: int

    @property
    def num_chunks(self) -> int:
        return -(-self.num_clips // self.chunk_clips)

    def clips(self, chunk: int) -> range:
        start = chunk * self.chunk_clips
        return range(start, min(start + self.chunk_clips, self.num_clips))


def chunk_clips_for(clip_bytes: int, chunk_bytes: int) -> int:
    """Clips per chunk so that a chunk holds about `chunk_bytes` (at least one clip)."""
    return max(1, chunk_bytes // max(clip_bytes, 1))


def check_disk(folder: Path, needed_bytes: int, what: str) -> None:
    """Stop before computing anything when `needed_bytes` would not fit on `folder`'s file system."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if needed_bytes > free:
        raise ConfigError(
            f"{what} need {needed_bytes / 1e9:.2f} GB but {folder} has {free / 1e9:.2f} GB free; "
            "free some space or set cache_dir elsewhere"
        )


class ChunkStore:
    """The chunk files of one split in `folder`."""

    def __init__(self, folder: Path, plan: ChunkPlan) -> None:
        self.folder, self.plan = Path(folder), plan

    def path(self, chunk: int) -> Path:
        return self.folder / chunk_name(chunk)

    def complete(self, chunk: int) -> bool:
        """Whether the chunk is on disk whole; a damaged one is named, removed, and so computed again."""
        path = self.path(chunk)
        rows = chunk_rows(path)
        if rows == len(self.plan.clips(chunk)):
            return True
        if path.exists():
            log.warning(f"discarding damaged cache file {path} (it is computed again)")
            path.unlink(missing_ok=True)
        return False

    def missing(self) -> list[int]:
        return [c for c in range(self.plan.num_chunks) if not self.complete(c)]

    def fill(
        self,
        compute: Callable[[range], dict[str, torch.Tensor]],
        order: list[int] | None = None,
        progress: Callable[[int], None] | None = None,
        wait: Callable[[], None] | None = None,
    ) -> int:
        """Compute and write every missing chunk (in `order`, default all), each under its claim; wait for chunks
        that another process holds (`wait`, default a short sleep, between looks). Returns how many chunks this
        process computed."""
        self.folder.mkdir(parents=True, exist_ok=True)
        pending = [c for c in (order if order is not None else range(self.plan.num_chunks)) if not self.complete(c)]
        computed = 0
        while pending:
            held_elsewhere = []
            for chunk in pending:
                with file_lock(self.path(chunk).with_name(chunk_name(chunk) + ".claim"), wait=False) as mine:
                    if not mine:
                        held_elsewhere.append(chunk)
                        continue
                    if self.complete(chunk):  # written by the process that held it before us
                        continue
                    tensors = {k: v.contiguous() for k, v in compute(self.plan.clips(chunk)).items()}
                    atomic_write(self.path(chunk), lambda tmp, t=tensors: save_file(t, tmp))
                    computed += 1
                    if progress is not None:
                        progress(len(self.plan.clips(chunk)))
            pending = [c for c in held_elsewhere if not self.complete(c)]
            if pending:
                (wait or partial(time.sleep, WAIT_POLL_S))()
        return computed

    def reader(self) -> ChunkReader:
        return ChunkReader(self)


class ChunkReader:
    """Rows of a store's chunks, memory-mapped: open files are kept per process (and per loader worker)."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store
        self._open: dict[int, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # loader workers open their own maps
        return {"store": self.store, "_open": {}}

    def keys(self) -> list[str]:
        return list(self._chunk(0).keys())

    def _chunk(self, chunk: int) -> Any:
        if chunk not in self._open:
            self._open[chunk] = safe_open(str(self.store.path(chunk)), framework="pt")
        return self._open[chunk]

    def row(self, index: int, keys: list[str] | None = None) -> dict[str, torch.Tensor]:
        chunk, offset = divmod(index, self.store.plan.chunk_clips)
        f = self._chunk(chunk)
        return {k: f.get_slice(k)[offset] for k in (keys or f.keys())}

    def rows(self, indices: range, keys: list[str] | None = None) -> dict[str, torch.Tensor]:
        """Consecutive rows stacked, chunk by chunk."""
        parts: list[dict[str, torch.Tensor]] = []
        position = indices.start
        while position < indices.stop:
            chunk, offset = divmod(position, self.store.plan.chunk_clips)
            take = min(indices.stop - position, self.store.plan.chunk_clips - offset)
            f = self._chunk(chunk)
            parts.append({k: f.get_slice(k)[offset : offset + take] for k in (keys or f.keys())})
            position += take
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class StoredSplit(Dataset):
    """Items {key: row} read lazily from stores of the same clips (targets, and features where a backbone
    reads)."""

    def __init__(self, readers: list[ChunkReader]) -> None:
        sizes = {r.store.plan.num_clips for r in readers}
        if len(sizes) != 1:
            raise ValueError(f"stores of different lengths: {sorted(sizes)}")
        self.readers = readers
        self.num_clips = sizes.pop()

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item: dict[str, torch.Tensor] = {}
        for reader in self.readers:
            item.update(reader.row(index))
        return item

    def stacked(self, limit: int | None = None, features: bool = False) -> dict[str, torch.Tensor]:
        """Whole tensors of every clip, or of `limit` clips spread evenly over the split (a sorted split, e.g. by
        class, is then still sampled throughout): the targets, and the features if asked."""
        if limit is None or limit >= self.num_clips:
            picked = None
        else:
            picked = sorted({round(i * (self.num_clips - 1) / max(limit - 1, 1)) for i in range(limit)})
        out: dict[str, torch.Tensor] = {}
        for reader in self.readers:
            wanted = [k for k in reader.keys() if features or k != "features"]
            if not wanted:
                continue
            if picked is None:
                out.update(reader.rows(range(self.num_clips), wanted))
            else:
                rows = [reader.row(i, wanted) for i in picked]
                out.update({k: torch.stack([r[k] for r in rows]) for k in wanted})
        return out
