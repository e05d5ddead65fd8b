"""fourd's own backbones: any fourd safetensors (ours or converted official), `random` (the same architecture
untrained), `pixels` (the raw tubelets, no encoder) and `trivial` (no video at all: the tasks' train-set prior,
see `ProbeTask.fit_prior`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from einops import rearrange

from fourd.conf import encoder_config
from fourd.models.readout import encoder_to_readout
from fourd.models.vit import SpaceTimeViT, ViTConfig, count_parameters, patchify, tubelet_grid
from fourd.probe.backbones.base import Backbone, BackboneError, as_float_video, file_identity
from fourd.weights import CheckpointError, checked_encoder_config, load_encoder

PIXEL_PATCH = (2, 8, 8)  # the tubelets of `pixels`: the demo encoder's patch size


class TrivialBackbone(Backbone):
    """No video: the probe scores the task's train-set prior."""

    reads_video = False

    def __init__(self) -> None:
        super().__init__("trivial", "trivial")

    @property
    def width(self) -> int:
        return 0

    def token_grid(self, clip_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        raise ValueError("backbone=trivial reads no video: it has no tokens")

    def features(self, video: torch.Tensor) -> torch.Tensor:
        raise ValueError("backbone=trivial reads no video: it has no features")


class PixelsBackbone(Backbone):
    """The raw 2x8x8 tubelets, patchified, with no encoder."""

    def __init__(self) -> None:
        super().__init__("pixels", "pixels")

    @property
    def width(self) -> int:
        return 3 * PIXEL_PATCH[0] * PIXEL_PATCH[1] * PIXEL_PATCH[2]

    def token_grid(self, clip_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return tubelet_grid(clip_shape, PIXEL_PATCH)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        t = video.shape[2] // PIXEL_PATCH[0]
        return rearrange(patchify(as_float_video(video), PIXEL_PATCH), "b (t n) d -> b t n d", t=t)


class EncoderBackbone(Backbone):
    """A fourd space-time ViT: its layer at `readout_depth`, one row per token time. Unlike the official
    readout's input, not resized to T frames: a copy of each token would double the probes' cost and add
    nothing to read.

    The weights are loaded (`load`) at their first use: a probe whose features are all cached never loads them.
    """

    def __init__(self, name: str, identity: str, config: ViTConfig, load: Callable[[], SpaceTimeViT]) -> None:
        super().__init__(name, identity)
        self.config, self.load = config, load
        self.device = torch.device("cpu")

    @property
    def encoder(self) -> SpaceTimeViT:
        if self.module is None:
            self.module = self.load().eval().to(self.device)
        return self.module

    @property
    def params(self) -> int:
        with torch.device("meta"):
            return count_parameters(SpaceTimeViT(self.config))

    @property
    def width(self) -> int:
        return self.config.width

    def token_grid(self, clip_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return tubelet_grid(clip_shape, self.config.patch_size)

    def to(self, device: torch.device | str) -> EncoderBackbone:
        self.device = torch.device(device)
        return super().to(device)

    @torch.no_grad()
    def features(self, video: torch.Tensor) -> torch.Tensor:
        grid = self.token_grid(tuple(video.shape[2:]))
        return encoder_to_readout(self.encoder.features(as_float_video(video)), grid, self.readout_depth, grid[0])


def random_backbone(random_arch: Mapping[str, Any], seed: int) -> EncoderBackbone:
    """A freshly initialised encoder of `random_arch` (a `model` config group), drawn from `seed`."""
    config = encoder_config(random_arch, "random_backbone")

    def draw() -> SpaceTimeViT:
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        encoder = SpaceTimeViT(config)
        torch.random.set_rng_state(generator_state)
        return encoder

    return EncoderBackbone("random", f"random:{seed}:{sorted(config.to_dict().items())}", config, draw)


def file_backbone(spec: str) -> EncoderBackbone:
    """The encoder of a fourd safetensors file (checked now, its weights loaded at first use)."""
    path = Path(spec)

    def read() -> SpaceTimeViT:
        try:
            return load_encoder(path)
        except CheckpointError as err:
            raise BackboneError(f"backbone {spec!r}: {err}") from err

    try:
        config = checked_encoder_config(path)
    except CheckpointError as err:
        raise BackboneError(f"backbone {spec!r}: {err}") from err
    return EncoderBackbone(spec, file_identity(path), config, read)
