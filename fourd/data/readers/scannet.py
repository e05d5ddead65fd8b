"""ScanNet scenes as exported by ScanNet's SensReader: colour, depth, intrinsics and camera poses per frame.

Layout under ``root``, frames numbered ``<i>`` (0, 1, ... or zero-padded)::

    <scene>/color/<i>.jpg                      colour frames
    <scene>/depth/<i>.png                      uint16 millimetres, 0 = no measurement, often smaller than colour
    <scene>/intrinsic/intrinsic_color.txt      4x4, OpenCV pixel convention (pixel centres at integers)
    <scene>/pose/<i>.txt                       4x4 camera-to-world, OpenCV axes; -inf or nan where tracking failed

Each scene is cut into non-overlapping clips of ``num_frames`` frames ``stride`` apart, named
``<scene>/<first frame>``. Items, resized to ``size`` x ``size`` by
:func:`~fourd.data.readers.geometry.resize_with_geometry` (depth straight from its own resolution, nearest
neighbours): "video" uint8 (3, T, size, size), "depth" float32 (T, size, size) metres, "intrinsics" float32
(T, 3, 3) in fourd's pixel convention, "world_to_camera" float32 (T, 4, 4). Scenes without intrinsics and
clips with missing files are skipped at construction; clips with an invalid pose or an unreadable image
when read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fourd.data.readers.base import EntryError, SkippingDataset, clip_windows, read_rgb, stack_frames
from fourd.data.readers.geometry import centres_to_corners, resize_with_geometry

MILLIMETRES_PER_METRE = 1000.0


class ScanNetDataset(SkippingDataset):
    """Clips of ScanNet scenes with metric depth, intrinsics and world-to-camera poses."""

    def __init__(
        self, root: str | Path, num_frames: int = 16, stride: int = 2, size: int = 64, max_retries: int = 16
    ) -> None:
        self.root = Path(root)
        scenes = sorted(path for path in self.root.iterdir() if (path / "color").is_dir())
        if not scenes:
            raise FileNotFoundError(f"no ScanNet scenes (<scene>/color/) in {self.root}")
        self.size = size
        self.clips: list[tuple[Path, list[str], np.ndarray]] = []  # scene, frame numbers, intrinsics
        names, skipped = [], {}
        for scene in scenes:
            try:
                intrinsics = centres_to_corners(read_matrix(scene / "intrinsic" / "intrinsic_color.txt")[:3, :3])
            except EntryError as error:
                skipped[scene.name] = str(error)
                continue
            frames = _frame_numbers(scene / "color", ".jpg")
            depths, poses = set(_frame_numbers(scene / "depth", ".png")), set(_frame_numbers(scene / "pose", ".txt"))
            windows = clip_windows(len(frames), num_frames, stride)
            if not windows:
                skipped[scene.name] = f"{len(frames)} frames: too few for one clip"
            for window in windows:
                clip = frames[window]
                name = f"{scene.name}/{clip[0]}"
                lacking = [frame for frame in clip if frame not in depths or frame not in poses]
                if lacking:
                    skipped[name] = f"no depth or pose for frames {lacking}"
                    continue
                self.clips.append((scene, clip, intrinsics))
                names.append(name)
        super().__init__(names, skipped, max_retries)

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        scene, frames, intrinsics = self.clips[entry]
        video = stack_frames([read_rgb(scene / "color" / f"{frame}.jpg") for frame in frames])
        depth = stack_frames([read_depth_millimetres(scene / "depth" / f"{frame}.png") for frame in frames])
        camera_to_world = np.stack([read_matrix(scene / "pose" / f"{frame}.txt") for frame in frames])
        if not np.isfinite(camera_to_world).all():
            raise EntryError("invalid camera pose (tracking lost)")
        item = {
            "video": torch.from_numpy(video).permute(3, 0, 1, 2),
            "depth": torch.from_numpy(depth.astype(np.float32) / MILLIMETRES_PER_METRE),
            "intrinsics": torch.from_numpy(np.repeat(intrinsics[None], len(frames), 0)).float(),
            "world_to_camera": torch.from_numpy(np.linalg.inv(camera_to_world)).float(),
        }
        return resize_with_geometry(item, self.size)


def read_matrix(path: Path) -> np.ndarray:
    """A 4x4 matrix from a text file, or EntryError."""
    try:
        matrix = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as error:
        raise EntryError(f"cannot read matrix {path.name}: {error}") from error
    if matrix.shape != (4, 4):
        raise EntryError(f"{path.name} holds a {matrix.shape} array, not 4x4")
    return matrix


def read_depth_millimetres(path: Path) -> np.ndarray:
    """uint16 (H, W) depth from a 16-bit PNG, or EntryError."""
    try:
        with Image.open(path) as image:
            depth = np.asarray(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise EntryError(f"cannot decode depth {path.name}: {type(error).__name__}: {error}") from error
    if depth.dtype != np.uint16 or depth.ndim != 2:
        raise EntryError(f"depth {path.name} must be a 16-bit single-channel PNG, got {depth.dtype} {depth.shape}")
    return depth


def _frame_numbers(folder: Path, suffix: str) -> list[str]:
    """File stems of the numbered frames in ``folder``, in frame order."""
    stems = [path.stem for path in folder.glob(f"*{suffix}") if path.stem.isdigit()] if folder.is_dir() else []
    return sorted(stems, key=int)
