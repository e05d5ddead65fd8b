"""The official depth model: the 4DS encoder, its feature at readout_depth, the attention readout, a depth map."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from einops import rearrange
from torch import nn

from fourd.models.readout import AttentionReadout, ReadoutConfig, encoder_to_readout
from fourd.models.vit import SpaceTimeViT, ViTConfig, tubelet_grid


def depth_from_patches(
    out: torch.Tensor, output_shape: tuple[int, int, int], output_patch: tuple[int, int, int], channels: int = 1
) -> torch.Tensor:
    """(B, Q, p0*p1*p2*c) -> (B, T, H, W, c): queries are (t, h, w)-raster patches, values (p0, p1, p2, c)."""
    (p0, p1, p2), (t, h, w) = output_patch, output_shape
    return rearrange(
        out,
        "b (n0 n1 n2) (p0 p1 p2 c) -> b (n0 p0) (n1 p1) (n2 p2) c",
        n0=t // p0,
        n1=h // p1,
        n2=w // p2,
        p0=p0,
        p1=p1,
        p2=p2,
        c=channels,
    )


@dataclass
class DepthConfig:
    """Encoder + depth readout; the defaults are the released 4DS-B-dist-e ScanNet depth model."""

    encoder: ViTConfig = field(default_factory=ViTConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)

    def __post_init__(self) -> None:
        e, r = self.encoder, self.readout
        if e.width != r.encoder_width:
            raise ValueError(f"readout encoder_width {r.encoder_width} != encoder width {e.width}")
        patches = math.prod(n // p for n, p in zip(self.output_shape, r.output_patch, strict=True))
        if r.num_queries != patches or r.num_classes != math.prod(r.output_patch) * r.output_channels:
            raise ValueError(
                f"{r.num_queries} queries x {r.num_classes} values do not tile {self.output_shape} "
                f"with patches {r.output_patch} x {r.output_channels} channels"
            )

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(T, H, W) of the predicted depth."""
        return (self.readout.num_frames, *self.encoder.image_size)

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder.to_dict(), "readout": self.readout.to_dict()}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> DepthConfig:
        return cls(ViTConfig.from_dict(config["encoder"]), ReadoutConfig.from_dict(config["readout"]))


class DepthModel(nn.Module):
    """The official depth model: 4DS encoder -> feature at readout_depth -> AttentionReadout -> depth map."""

    def __init__(self, config: DepthConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SpaceTimeViT(config.encoder)
        self.readout = AttentionReadout(config.readout)

    def features(self, video: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's official feature list."""
        return self.encoder.features(video)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) video in [0, 1] -> raw depth (B, T, H, W) (channel axis kept if output_channels > 1)."""
        r, expected = self.config.readout, (self.config.encoder.num_frames, *self.config.encoder.image_size)
        if tuple(video.shape[2:]) != expected:  # the readout's queries tile exactly this clip
            raise ValueError(
                f"this depth model takes (batch, 3, {', '.join(map(str, expected))}) clips, got {tuple(video.shape)}"
            )
        grid = tubelet_grid(video.shape[2:], self.config.encoder.patch_size)
        tokens = encoder_to_readout(self.features(video), grid, r.readout_depth, r.num_frames)
        depth = depth_from_patches(
            self.readout(tokens), (r.num_frames, *video.shape[3:]), r.output_patch, r.output_channels
        )
        return depth.squeeze(-1)
