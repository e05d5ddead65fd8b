"""Kubric (MOVi) point-track training clips in fourd's on-disk record format.

Real Kubric point tracking data are TFRecords read through TensorFlow; fourd stores each video instead as
one ``.npz`` file (write it with :func:`kubric_record_from_arrays`) holding:

- "video": uint8 (T, H, W, 3),
- "target_points": float32 (N, T, 2), pixel (x, y) in the frame, (0, 0) its top-left corner,
- "occluded": bool (N, T).

Items are those of :class:`~fourd.data.readers.tapvid.PointTrackDataset`, named by file stem. Files are
only listed at construction; an unreadable or malformed file is skipped when read.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from fourd.data.readers.base import EntryError
from fourd.data.readers.tapvid import QUERY_STRIDE, PointTrackDataset, check_tracks

RECORD_KEYS = ("video", "target_points", "occluded")


class KubricDataset(PointTrackDataset):
    """Point-track clips of the first ``num_frames`` frames of each ``.npz`` record under ``root``."""

    def __init__(
        self,
        root: str | Path,
        num_frames: int = 24,
        size: int = 64,
        query_mode: str = "first",
        query_stride: int = QUERY_STRIDE,
        num_points: int | None = None,
        max_retries: int = 16,
    ) -> None:
        self.root = Path(root)
        self.files = sorted(path for path in self.root.glob("*.npz") if not path.name.startswith("."))
        if not self.files:
            raise FileNotFoundError(f"no Kubric .npz records in {self.root}")
        names = [path.stem for path in self.files]
        super().__init__(names, {}, num_frames, size, query_mode, query_stride, num_points, max_retries)

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        video, points, occluded = read_kubric_record(self.files[entry])
        return self.track_item(entry, video, points, occluded)


def read_kubric_record(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Video, target points and occlusion of one record, checked; EntryError where unusable."""
    try:
        with path.open("rb") as file, np.load(file) as record:  # numpy leaks its own handle on bad zips
            arrays = {key: record[key] for key in RECORD_KEYS if key in record.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise EntryError(f"cannot read record: {type(error).__name__}: {error}") from error
    missing = [key for key in RECORD_KEYS if key not in arrays]
    if missing:
        raise EntryError(f"record lacks {missing}")
    return _checked(*(arrays[key] for key in RECORD_KEYS))


def kubric_record_from_arrays(
    path: str | Path, video: np.ndarray, target_points: np.ndarray, occluded: np.ndarray
) -> Path:
    """Write one record (see the module docstring) as a compressed ``.npz`` file; EntryError for bad arrays."""
    video, points, occluded = _checked(video, target_points, occluded)
    path = Path(path)
    with path.open("wb") as file:  # a file object: numpy would append ".npz" to a path without it
        np.savez_compressed(file, video=video, target_points=points, occluded=occluded)
    return path


def _checked(video: np.ndarray, points: np.ndarray, occluded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    video = np.asarray(video)
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise EntryError(f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
    return (video, *check_tracks(len(video), points, occluded))
