"""RealEstate10K camera trajectories with their frames: video, intrinsics and world-to-camera poses.

A camera file ``root/<split>/<sequence>.txt`` starts with the YouTube URL, then has one line per frame of
19 numbers: the timestamp (microseconds), fx fy cx cy normalised by the frame width and height, two zeros,
and the 3x4 world-to-camera matrix row by row (OpenCV axes). The frame shot at a timestamp is
``frames_root/<sequence>/<timestamp>.png`` (or ``.jpg``).

Each sequence is cut into non-overlapping clips of ``num_frames`` frames ``stride`` apart, named
``<sequence>/<first timestamp>``. Items, resized to ``size`` x ``size`` by
:func:`~fourd.data.readers.geometry.resize_with_geometry`: "video" uint8 (3, T, size, size), "intrinsics"
float32 (T, 3, 3) in pixels, "world_to_camera" float32 (T, 4, 4). A sequence with a malformed line or a
missing frame is skipped whole at construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fourd.data.readers.base import EntryError, SkippingDataset, clip_windows, read_rgb, stack_frames
from fourd.data.readers.geometry import homogeneous, intrinsics_matrix, resize_with_geometry

NUMBERS_PER_LINE = 19
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class CameraTrack:
    """One camera file: per-frame timestamps (T,), normalised fx fy cx cy (T, 4), world-to-camera (T, 3, 4)."""

    url: str
    timestamps: list[int]
    intrinsics: np.ndarray
    poses: np.ndarray


class RealEstate10KDataset(SkippingDataset):
    """Clips of the RealEstate10K sequences of ``split`` whose frames are all under ``frames_root``."""

    def __init__(
        self,
        root: str | Path,
        frames_root: str | Path,
        split: str = "test",
        num_frames: int = 16,
        stride: int = 2,
        size: int = 64,
        max_retries: int = 16,
    ) -> None:
        self.root, self.frames_root = Path(root), Path(frames_root)
        files = sorted((self.root / split).glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"no RealEstate10K camera files in {self.root / split}")
        self.size = size
        self.clips: list[tuple[CameraTrack, list[Path], slice]] = []  # camera, frame files, frames of the clip
        names, skipped = [], {}
        for file in files:
            try:
                camera = read_camera_file(file)
                frames = _frame_files(self.frames_root / file.stem, camera.timestamps)
            except EntryError as error:
                skipped[file.stem] = str(error)
                continue
            windows = clip_windows(len(frames), num_frames, stride)
            if not windows:
                skipped[file.stem] = f"{len(frames)} frames: too few for one clip"
            for window in windows:
                self.clips.append((camera, frames, window))
                names.append(f"{file.stem}/{camera.timestamps[window.start]}")
        super().__init__(names, skipped, max_retries)

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        camera, frames, window = self.clips[entry]
        video = stack_frames([read_rgb(path) for path in frames[window]])
        height, width = video.shape[1:3]
        fx, fy, cx, cy = (camera.intrinsics[window] * np.array([width, height, width, height])).T
        item = {
            "video": torch.from_numpy(video).permute(3, 0, 1, 2),
            "intrinsics": torch.from_numpy(intrinsics_matrix(fx, fy, cx, cy)).float(),
            "world_to_camera": torch.from_numpy(homogeneous(camera.poses[window])).float(),
        }
        return resize_with_geometry(item, self.size)


def read_camera_file(path: Path) -> CameraTrack:
    """Parse one camera file (see the module docstring), or raise EntryError naming the bad line."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EntryError(f"cannot read camera file: {error}") from error
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        try:
            values = [float(token) for token in line.split()]
        except ValueError as error:
            raise EntryError(f"line {number}: {error}") from error
        if len(values) != NUMBERS_PER_LINE or not np.isfinite(values).all():
            raise EntryError(f"line {number}: {len(values)} numbers, expected {NUMBERS_PER_LINE} finite ones")
        rows.append(values)
    if not rows:
        raise EntryError("no frames")
    table = np.array(rows)
    return CameraTrack(
        url=lines[0].strip(),
        timestamps=[int(value) for value in table[:, 0]],
        intrinsics=table[:, 1:5],
        poses=table[:, 7:].reshape(-1, 3, 4),
    )


def _frame_files(folder: Path, timestamps: list[int]) -> list[Path]:
    """The frame file of every timestamp, or EntryError naming the first missing ones."""
    if not folder.is_dir():
        raise EntryError(f"no frames folder {folder}")
    found = {path.stem: path for path in folder.iterdir() if path.suffix.lower() in FRAME_SUFFIXES}
    missing = [stamp for stamp in timestamps if str(stamp) not in found]
    if missing:
        raise EntryError(f"{len(missing)} of {len(timestamps)} frames missing in {folder} (first: {missing[0]})")
    return [found[str(stamp)] for stamp in timestamps]
