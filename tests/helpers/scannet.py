"""A small ScanNet-style exported scene (color/, depth/ in mm, pose/, intrinsic/) on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_scannet_scene(root: Path, name: str, num_frames: int = 6, intrinsics: bool = True) -> Path:
    """Frames 24x32 of rising grey, depth 1 m (left half) and 2.5 m (a quarter), poses moving along x."""
    scene = root / name
    for folder in ("color", "depth", "pose", "intrinsic"):
        (scene / folder).mkdir(parents=True)
    depth = np.zeros((12, 16), np.uint16)
    depth[:, :8], depth[:, 8:12] = 1000, 2500  # millimetres; the right quarter is invalid (0)
    for i in range(num_frames):
        Image.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)).save(scene / "color" / f"{i}.jpg")
        Image.fromarray(depth).save(scene / "depth" / f"{i}.png")
        camera_to_world = np.eye(4)
        camera_to_world[:3, 3] = [i, 2.0, -1.0]
        np.savetxt(scene / "pose" / f"{i}.txt", camera_to_world)
    if intrinsics:
        matrix = np.array([[30.0, 0, 15.5, 0], [0, 28.0, 11.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        np.savetxt(scene / "intrinsic" / "intrinsic_color.txt", matrix)
    return scene
