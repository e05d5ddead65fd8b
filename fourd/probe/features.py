"""A split's targets (once per data) and frozen-backbone features (once per backbone, layer and data) in chunk
stores on disk, so that repeated probes, seeds and sweeps never decode a clip or run the encoder again, and a
split of any size streams from disk."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from math import prod
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from fourd.probe.backbones import Backbone
from fourd.probe.store import WAIT_POLL_S, ChunkPlan, ChunkStore, StoredSplit, check_disk, chunk_clips_for

log = logging.getLogger(__name__)
NOT_TARGETS = ("video", "features", "skipped")
FEATURE_BYTES = 2  # float16


def targets_of(item: dict[str, Any]) -> dict[str, torch.Tensor]:
    """An item's ground-truth tensors (all but the video)."""
    return {k: v for k, v in item.items() if k not in NOT_TARGETS and torch.is_tensor(v)}


def stack_targets(dataset: Dataset, clips: range | None = None) -> dict[str, torch.Tensor]:
    """Every ground-truth tensor of the given clips (default all), stacked: (N, ...) per key."""
    items = [targets_of(dataset[i]) for i in (clips if clips is not None else range(len(dataset)))]
    return {k: torch.stack([item[k] for item in items]) for k in items[0]}


class FrozenFeatures:
    """The readout inputs (B, T, h*w, D) of a batch's clips in float16, on `device` (where the backbone is):
    what the store holds, and what a step computes when features come on the fly (cache_features=false).

    Every rank calls `wait` while it waits for another process's work and `done` after each phase of forwards;
    they matter to a sharded backbone, whose forwards all ranks run together (`LockstepFeatures`).
    """

    def __init__(self, backbone: Backbone, device: torch.device) -> None:
        self.backbone, self.device = backbone, device

    @torch.no_grad()
    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.backbone.features(batch["video"].to(self.device)).half()

    def wait(self) -> None:
        time.sleep(WAIT_POLL_S)

    def done(self) -> None:
        """The end of a phase of forwards (extraction, prediction): nothing to do on one rank."""


def compute_features(featurize: FrozenFeatures, dataset: Dataset, batch_size: int) -> torch.Tensor:
    """Readout inputs (N, T, h*w, D) of every clip of `dataset`, in float16, on the CPU."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    return torch.cat([featurize(batch).cpu() for batch in loader])


def feature_bytes_per_clip(backbone: Backbone, clip_shape: tuple[int, int, int]) -> int:
    """Bytes of one clip's readout input: token times x places x width, in float16."""
    return prod(backbone.token_grid(clip_shape)) * backbone.width * FEATURE_BYTES


def fill_store(
    folder: Path,
    num_clips: int,
    clip_bytes: int,
    compute: Callable[[range], dict[str, torch.Tensor]],
    what: str,
    chunk_bytes: int,
    rank: int = 0,
    world_size: int = 1,
    wait: Callable[[], None] | None = None,
) -> ChunkStore:
    """The chunk store of `num_clips` clips in `folder`, its missing chunks computed first: this rank's share
    (every world_size-th chunk from `rank`), then any other still missing, each under its claim; `wait` is called
    while another process holds a chunk.

    The cost is said up front, and a store that would not fit on its disk stops before computing anything.
    """
    store = ChunkStore(folder, ChunkPlan(num_clips, chunk_clips_for(clip_bytes, chunk_bytes)))
    missing = store.missing()
    computed = 0
    if missing:
        clips = sum(len(store.plan.clips(c)) for c in missing)
        check_disk(folder, clips * clip_bytes, what)
        log.info(f"{what}: {clips} of {num_clips} clips to compute, {clips * clip_bytes / 1e9:.3f} GB to {folder}")
        mine = missing[rank::world_size]
        order = mine + [c for c in missing if c not in mine]
        with tqdm(total=clips, desc=what, unit="clip") as bar:
            computed = store.fill(compute, order, progress=bar.update, wait=wait)
    log.info(f"{what}: rank {rank} of {world_size} computed {computed} of {store.plan.num_chunks} chunks")
    return store


def split_store(
    root: Path,
    targets_key: str,
    features_key: str | None,
    name: str,
    dataset: Dataset,
    featurize: FrozenFeatures | None,
    batch_size: int,
    chunk_bytes: int,
    rank: int = 0,
    world_size: int = 1,
) -> StoredSplit:
    """One split's targets and (with `features_key`) its features by `featurize`, computed where missing, read
    lazily."""
    first = dataset[0]
    target_bytes = sum(v.numel() * v.element_size() for v in targets_of(first).values())
    stores = [
        fill_store(
            root / "targets" / targets_key / name,
            len(dataset),
            target_bytes,
            lambda clips: stack_targets(dataset, clips),
            f"targets of {name}",
            chunk_bytes,
            rank,
            world_size,
        )
    ]
    if features_key is not None:
        if featurize is None:
            raise ValueError("features to store but no backbone to compute them")
        backbone = featurize.backbone
        clip_shape = tuple(first["video"].shape[1:])
        stores.append(
            fill_store(
                root / "features" / features_key / name,
                len(dataset),
                feature_bytes_per_clip(backbone, clip_shape),
                lambda clips: {"features": compute_features(featurize, Subset(dataset, clips), batch_size)},
                f"features of {backbone.name} for {name}",
                chunk_bytes,
                rank,
                world_size,
                featurize.wait,
            )
        )
        featurize.done()
    return StoredSplit([s.reader() for s in stores])
