"""Clips of real videos from a folder or a CSV list, robust to unreadable files."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from fourd.data.skipping import first_usable
from fourd.data.transforms import ClipTransform, check_augment
from fourd.data.video import VIDEO_EXTENSIONS, VideoReadError, read_clip, read_frames
from fourd.errors import FourdError, first_few

MAX_REASONS_SHOWN = 3


class UnreadableSourceError(FourdError):
    """A video source in which no video can be read."""


def sample_clip_indices(
    num_video_frames: int, num_frames: int, stride: int, rng: random.Random | None = None
) -> list[int]:
    """Indices of ``num_frames`` frames ``stride`` apart.

    The start is uniform over the valid starts, or centred when ``rng`` is None (evaluation). A video
    shorter than the clip span repeats its last frame.
    """
    if num_video_frames < 1 or num_frames < 1 or stride < 1:
        raise ValueError(f"need positive sizes, got {num_video_frames=}, {num_frames=}, {stride=}")
    last_start = max(num_video_frames - ((num_frames - 1) * stride + 1), 0)
    start = rng.randint(0, last_start) if rng is not None else last_start // 2
    return [min(start + k * stride, num_video_frames - 1) for k in range(num_frames)]


def list_videos(source: str | Path) -> list[Path]:
    """Videos under a folder (recursive, sorted, hidden files skipped) or listed in a CSV file.

    A CSV's first column holds paths, absolute or relative to the CSV's folder; an optional header row
    starts with "path"; other columns are ignored.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"video source not found: {source}")
    if source.is_dir():
        videos = sorted(
            path
            for path in source.rglob("*")
            if path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".") and path.is_file()
        )
    elif source.suffix.lower() == ".csv":
        videos = _videos_in_csv(source)
    else:
        raise ValueError(f"video source must be a folder or a .csv file: {source}")
    if not videos:
        raise ValueError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) found in {source}")
    return videos


def _videos_in_csv(source: Path) -> list[Path]:
    with source.open(newline="") as file:
        cells = [row[0].strip() for row in csv.reader(file) if row and row[0].strip()]
    if cells and cells[0].lower() == "path":
        cells = cells[1:]
    return [source.parent / cell for cell in cells]  # an absolute cell replaces the folder


def check_readable(source: str | Path, videos: Sequence[Path], backend: str | None = None, tries: int = 16) -> None:
    """Raise UnreadableSourceError unless one of ``tries`` videos spread over ``videos`` reads.

    Probing stops at the first readable video, so a usable source costs one read, however large it is.
    """
    count = min(tries, len(videos))
    errors: list[VideoReadError] = []
    for k in range(count):
        try:
            read_frames(videos[k * len(videos) // count], [0], backend)
            return
        except VideoReadError as error:
            errors.append(error)
    reasons = first_few([f"{error.path}: {error.reason}" for error in errors], MAX_REASONS_SHOWN, "; ")
    raise UnreadableSourceError(f"no readable video in {source} ({count} of {len(videos)} tried): {reasons}")


class VideoClipDataset(Dataset):
    """Clips {"video": uint8 (C, T, size, size), "index": int, "skipped": int} from the videos of ``source``.

    At construction the videos are listed and probed until one reads (:func:`check_readable`). An
    unreadable video is warned about once, remembered, and replaced by the next one: the item reads video
    "index" after passing over the "skipped" unreadable videos before it (:meth:`passed_over`).

    ``repeats`` > 1 (repeated sampling, as MAE-ST and VideoMAE v2): each item decodes its frames once and makes
    that many clips of them, each with its own crop and flip; "video" is then (repeats, C, T, size, size).
    ``decode_short_side``: the decoder scales frames to this shorter side (None: decoded at full size).
    ``augment="device"``: items carry the decoded "frames" and their "crops" instead of "video", and the data module
    crops the whole batch on the training device (:func:`fourd.data.transforms.crop_batch`).
    """

    def __init__(
        self,
        source: str | Path,
        num_frames: int = 16,
        stride: int = 2,
        size: int = 224,
        train: bool = True,
        max_retries: int = 16,
        backend: str | None = None,
        repeats: int = 1,
        decode_short_side: int | None = None,
        augment: str = "workers",
    ) -> None:
        if min(num_frames, stride, max_retries, repeats) < 1:
            raise ValueError(f"need positive values, got {num_frames=}, {stride=}, {max_retries=}, {repeats=}")
        if decode_short_side is not None and decode_short_side < size:
            raise ValueError(f"decode_short_side {decode_short_side} is below the clip size {size}")
        self.source = Path(source)
        self.videos = list_videos(source)
        check_readable(source, self.videos, backend)
        self.num_frames = num_frames
        self.stride = stride
        self.train = train
        self.max_retries = max_retries
        self.backend = backend
        self.repeats = repeats
        self.decode_short_side = decode_short_side
        self.augment = check_augment(augment)
        self.transform = ClipTransform(size, train=train)
        self.unreadable: dict[Path, str] = {}  # path -> reason; per process, each worker learns its own

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        # seeded per item in training (fourd.data.sampler.SeededItems); per worker and epoch by torch otherwise
        rng = random.Random(f"{torch.initial_seed()}:{index}") if self.train else None
        item, position, skipped = first_usable(
            index,
            len(self.videos),
            self.max_retries,
            self.unreadable,
            self.videos.__getitem__,
            lambda position: self._read(self.videos[position], rng),
            (VideoReadError,),
            f"videos under {self.source}",
        )
        return {**item, "index": position, "skipped": skipped}

    def passed_over(self, index: int, skipped: int) -> list[Path]:
        """The unreadable videos skipped by an item that read video ``index`` after skipping ``skipped``."""
        return [self.videos[(index - k) % len(self.videos)] for k in range(skipped, 0, -1)]

    def _read(self, path: Path, rng: random.Random | None) -> dict[str, torch.Tensor]:
        frames = read_clip(
            path,
            lambda length: sample_clip_indices(length, self.num_frames, self.stride, rng),
            self.backend,
            self.decode_short_side,
        )
        return self.transform.clips(torch.from_numpy(frames), self.repeats, self.augment)
