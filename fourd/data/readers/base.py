"""What every reader shares: named entries, skipping bad ones with a warning, clip windows, image decoding."""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fourd.data.skipping import first_usable
from fourd.data.video import VideoReadError
from fourd.errors import FourdError, first_few

MAX_REASONS_SHOWN = 3


class EntryError(ValueError):
    """An entry of a dataset that cannot be used: missing, malformed, or undecodable."""


class SkippingDataset(Dataset):
    """Items read from named entries, each entry giving ``clips_per_entry`` consecutive items.

    ``names[i]`` names entry i, which items carry as "index". ``skipped`` maps names to why they are
    unusable: entries dropped while listing (reported in one warning at construction, or one FourdError where
    none is left) and entries that fail when read (warned about once, remembered, and replaced by the next item, like
    :class:`fourd.data.clips.VideoClipDataset`); "skipped" counts the items passed over.
    """

    clips_per_entry = 1

    def __init__(self, names: Sequence[str], skipped: Mapping[str, str], max_retries: int = 16) -> None:
        if max_retries < 1:
            raise ValueError(f"need max_retries >= 1, got {max_retries}")
        self.names = list(names)
        self.skipped = dict(skipped)
        self.max_retries = max_retries
        report_skipped(type(self).__name__, len(self.names), self.skipped)

    def __len__(self) -> int:
        return len(self.names) * self.clips_per_entry

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items")
        item, position, skipped = first_usable(
            index,
            len(self),
            self.max_retries,
            self.skipped,
            lambda position: self.names[position // self.clips_per_entry],
            lambda position: self.load(*divmod(position, self.clips_per_entry)),
            (EntryError, VideoReadError),
            f"{type(self).__name__} items",
        )
        entry = position // self.clips_per_entry
        return {**item, "index": torch.tensor(entry, dtype=torch.int64), "skipped": skipped}

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        """The tensors of clip ``clip`` of entry ``entry``; raises EntryError or VideoReadError."""
        raise NotImplementedError


def report_skipped(owner: str, kept: int, skipped: Mapping[str, str]) -> None:
    """One warning naming how many entries were dropped, with the first few reasons; a FourdError (one `error:`
    line from an entry point) where none is kept."""
    if kept and not skipped:
        return
    reasons = first_few([f"{name}: {reason}" for name, reason in skipped.items()], MAX_REASONS_SHOWN, "; ")
    message = f"{owner}: skipped {len(skipped)} entries, kept {kept} ({reasons or 'none listed'})"
    if not kept:
        raise FourdError(message)
    warnings.warn(message, stacklevel=3)


def clip_windows(length: int, num_frames: int, stride: int) -> list[slice]:
    """The non-overlapping clips of ``num_frames`` frames ``stride`` apart in ``length`` frames, as slices."""
    if num_frames < 1 or stride < 1:
        raise ValueError(f"need positive sizes, got {num_frames=}, {stride=}")
    span = (num_frames - 1) * stride + 1
    return [slice(start, start + span, stride) for start in range(0, length - span + 1, span)]


def fixed_count(arrays: Sequence[np.ndarray], fills: Sequence[Any], count: int, rng: np.random.Generator) -> list:
    """Exactly ``count`` rows of each of ``arrays`` (rows in step): a random subset in order, or all rows padded
    with rows of ``fills`` (never-visible points or objects), so that items batch."""
    rows = len(arrays[0])
    if rows >= count:
        keep = np.sort(rng.choice(rows, count, replace=False))
        return [array[keep] for array in arrays]
    return [
        np.pad(array, [(0, count - rows)] + [(0, 0)] * (array.ndim - 1), constant_values=fill)
        for array, fill in zip(arrays, fills, strict=True)
    ]


def read_rgb(source: Path | bytes) -> np.ndarray:
    """uint8 (H, W, 3) from an image file or encoded image bytes; EntryError where it cannot be decoded."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as error:  # PIL: UnidentifiedImageError (an OSError), truncation
        raise EntryError(f"cannot decode image: {type(error).__name__}: {error}") from error


def stack_frames(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Stack equally sized frames, or raise EntryError."""
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1:
        raise EntryError(f"frames of different sizes: {sorted(shapes)}")
    return np.stack(frames)
