"""Training-time augmentation of probe clips together with their ground truth, redrawn every epoch (as V-JEPA 2's
attentive probes do): one random resized crop and one horizontal flip per clip, shared by every frame, applied
to the video and to every geometric target by :func:`~fourd.data.readers.geometry.resized_crop_with_geometry`.

Every draw comes from a ``torch.Generator``; :class:`AugmentedSplit` seeds it from (seed, epoch, index), so a
resumed run redraws the crops of an uninterrupted one, whatever the workers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import Dataset

from fourd.data.readers.geometry import resized_crop_with_geometry
from fourd.data.sampler import SampleKey, item_seed
from fourd.data.transforms import ASPECT_RATIOS, Crop
from fourd.errors import ConfigError

CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop: draws before falling back to the centre crop


@dataclass(frozen=True)
class ProbeAugment:
    """Random resized crop (area fraction in `scale`, width / height in `ratio`) and horizontal flip with
    probability `flip`. Built from a config's ``train.augment: {scale: [0.3, 1.0], ratio: [0.75, 1.333],
    flip: 0.5}`` by :meth:`from_config`; ``train.augment: null`` is no augmentation."""

    scale: tuple[float, float] = (0.3, 1.0)
    ratio: tuple[float, float] = ASPECT_RATIOS
    flip: float = 0.5

    def __post_init__(self) -> None:
        for name, low_bound in (("scale", 0.0), ("ratio", 0.0)):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != 2 or not low_bound < values[0] <= values[1]:
                raise ConfigError(f"augment.{name}={list(values)}: need [low, high] with 0 < low <= high")
            object.__setattr__(self, name, values)
        if self.scale[1] > 1:
            raise ConfigError(f"augment.scale={list(self.scale)}: an area fraction of the frame, at most 1")
        if not 0 <= self.flip <= 1:
            raise ConfigError(f"augment.flip={self.flip}: a probability in [0, 1]")
        object.__setattr__(self, "flip", float(self.flip))

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ProbeAugment | None:
        """The augmentation a config asks for; None (no augmentation) for null."""
        if config is None:
            return None
        unknown = set(config) - {"scale", "ratio", "flip"}
        if unknown:
            raise ConfigError(f"augment: unknown keys {sorted(unknown)} (has scale, ratio, flip)")
        return cls(**dict(config))

    def draw(self, height: int, width: int, generator: torch.Generator) -> Crop:
        """One crop and flip of a `height` x `width` clip: the box as torchvision's RandomResizedCrop draws it
        (see :func:`random_resized_box`), then the flip, both from `generator`."""
        box = random_resized_box(height, width, self.scale, self.ratio, generator)
        return Crop(*box, bool(torch.rand((), generator=generator) < self.flip))

    def __call__(self, item: dict[str, Any], size: int, generator: torch.Generator) -> dict[str, Any]:
        """`item` cropped, resized to (size, size) and maybe flipped, with its ground truth (see the module)."""
        return resized_crop_with_geometry(item, self.draw(*item["video"].shape[-2:], generator), size)


def random_resized_box(
    height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float], generator: torch.Generator
) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a crop of a `height` x `width` frame: torchvision's
    ``RandomResizedCrop.get_params``, number for number, drawing from `generator` instead of torch's global one.

    Up to 10 draws of an area fraction uniform in `scale` and an aspect ratio log-uniform in `ratio` until the box
    fits, at a uniform place; else the centre crop with the aspect ratio clamped into `ratio`.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(CROP_ATTEMPTS):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = torch.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator)).item()
        w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def random_crop_flip(
    item: dict[str, Any],
    size: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = ASPECT_RATIOS,
    flip: float = 0.5,
) -> dict[str, Any]:
    """`item` under one random resized crop and flip drawn from `generator`, at (size, size) (see the module)."""
    return ProbeAugment(scale, ratio, flip)(item, size, generator)


class AugmentedSplit(Dataset):
    """Items of `dataset` under `augment`, at (size, size), read by the SampleKeys of a ResumableSampler: item
    `index` of epoch `epoch` draws its crop from (seed, epoch, index) only, so a resumed run redraws the crops of
    an uninterrupted one, whatever the workers. Items carry their "epoch" and stream "position"."""

    def __init__(self, dataset: Dataset, size: int, augment: ProbeAugment, seed: int = 0) -> None:
        self.dataset, self.size, self.augment, self.seed = dataset, size, augment, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey) -> dict[str, Any]:
        generator = torch.Generator().manual_seed(item_seed(self.seed, key.epoch, key.index))
        item = self.augment(self.dataset[key.index], self.size, generator)
        return {**item, "epoch": key.epoch, "position": key.position}
