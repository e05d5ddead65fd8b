"""Kinetics-like videos for the loader benchmark, written here with PyAV's libx264 (nothing downloads): 10 s at
30 fps, 340x256, H.264 with a keyframe every 150 frames, moving textures with grain so the encoder cannot
compress them away."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fourd.data.video import write_video


def kinetics_like_frames(seed: int, num_frames: int = 300, height: int = 256, width: int = 340) -> np.ndarray:
    """uint8 (T, H, W, 3): drifting coloured stripes and a moving square over per-frame grain."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(40, 200, size=3)
    y, x = np.mgrid[:height, :width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        stripes = 50 * np.sin(2 * np.pi * (x + 3 * t) / 48 + y / 20)
        picture = colour + stripes[..., None] + rng.normal(0, 12, (height, width, 1))
        top, left = (t * 2) % (height - 64), (t * 3) % (width - 64)
        picture[top : top + 64, left : left + 64] = 255 - colour
        frames[t] = np.clip(picture, 0, 255)
    return frames


def write_kinetics_like(path: Path, seed: int, fps: int = 30, gop: int = 150) -> None:
    write_video(path, kinetics_like_frames(seed), fps, {"g": str(gop), "preset": "veryfast"})


def is_video_folder(folder: Path) -> bool:
    """A folder holding only these videos (hidden temporaries aside): --make-videos adds to it freely."""
    return all(re.fullmatch(r"clip_\d{3,}\.mp4", p.name) or p.name.startswith(".") for p in folder.iterdir())


def write_kinetics_like_folder(folder: Path, num: int) -> list[Path]:
    """`num` videos in `folder` (those already there are kept)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"clip_{k:03d}.mp4" for k in range(num)]
    for seed, path in enumerate(tqdm(paths, desc="Kinetics-like videos", unit="video")):
        if not path.is_file():
            write_kinetics_like(path, seed)
    return paths
