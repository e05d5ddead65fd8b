"""What every probe backbone is: a frozen module that turns a clip into the readout's token grid."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from fourd.errors import FourdError
from fourd.models.readout import readout_layer_index
from fourd.models.sizes import RELEASE_READOUT_DEPTH
from fourd.models.vit import count_parameters

BASELINES = ("trivial", "pixels", "random")


class BackboneError(FourdError, ValueError):
    """A `backbone=` that names no baseline and nothing loadable."""


def as_float_video(video: torch.Tensor) -> torch.Tensor:
    """uint8 or float (B, C, T, H, W) -> float in [0, 1]."""
    return video.float().div(255) if video.dtype == torch.uint8 else video


def block_input_index(num_blocks: int, readout_depth: float) -> int:
    """The block whose input the official readout reads. The official feature list is [tokens, input of block 0,
    ..., input of block L-1]; `readout_depth` picks entry int((L + 1) * depth) - 1 of it."""
    return max(readout_layer_index(num_blocks + 1, readout_depth) - 1, 0)


class Backbone(ABC):
    """What a probe reads: `features(video)` -> (B, t, h*w, D) on the grid `token_grid(T, H, W)`.

    `name` is as given on the command line, `identity` what makes its features unique (for the feature cache),
    `module` the frozen network (None where there is none), `readout_depth` the layer its features come from (set
    once, by `load_backbone`)."""

    reads_video = True
    readout_depth = RELEASE_READOUT_DEPTH

    def __init__(self, name: str, identity: str, module: nn.Module | None = None) -> None:
        self.name = name
        self.identity = identity
        self.module = module.eval() if module is not None else None

    @property
    def params(self) -> int:
        return count_parameters(self.module) if self.module is not None else 0

    @property
    @abstractmethod
    def width(self) -> int:
        """D of the features."""

    @abstractmethod
    def token_grid(self, clip_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(t, h, w) of the features of a (T, H, W) clip."""

    @abstractmethod
    def features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) video (uint8, or float in [0, 1]) -> (B, t, h*w, D) at `readout_depth`."""

    def to(self, device: torch.device | str) -> Backbone:
        if self.module is not None:
            self.module.to(device)
        return self


def file_identity(path: Path) -> str:
    """A file's or folder's path, sizes and modification times: what the feature cache keys it by."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stats = [f"{p.relative_to(path) if path.is_dir() else ''}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return f"{path.resolve()}|{'|'.join(stats)}"


def resize_clip(video: torch.Tensor, frames: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C, frames, *size): evenly spaced frames, antialiased bilinear pixels."""
    b, _, t, h, w = video.shape
    if t != frames:
        video = video[:, :, torch.linspace(0, t - 1, frames).round().long()]
    if (h, w) != tuple(size):
        flat = rearrange(video, "b c t h w -> (b t) c h w")
        flat = F.interpolate(flat, size=size, mode="bilinear", antialias=True, align_corners=False)
        video = rearrange(flat, "(b t) c h w -> b c t h w", b=b)
    return video
