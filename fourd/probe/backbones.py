"""Frozen backbones for probes: any fourd safetensors (ours or converted official), `random` (the same
architecture untrained), `pixels` (the raw tubelets, no encoder) and `trivial` (no video at all: the tasks'
train-set prior, see `ProbeTask.fit_prior`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from einops import rearrange

from fourd.conf import encoder_config
from fourd.errors import FourdError
from fourd.models.mae import patchify
from fourd.models.readout import encoder_to_readout
from fourd.models.vit import SpaceTimeViT, count_parameters
from fourd.weights import CheckpointError, load_encoder

BASELINES = ("trivial", "pixels", "random")
PIXEL_PATCH = (2, 8, 8)  # the tubelets of `pixels`: the demo encoder's patch size


class BackboneError(FourdError, ValueError):
    """A `backbone=` that names no baseline and no loadable fourd weights file."""


def as_float_video(video: torch.Tensor) -> torch.Tensor:
    """uint8 or float (B, C, T, H, W) -> float in [0, 1]."""
    return video.float().div(255) if video.dtype == torch.uint8 else video


@dataclass
class Backbone:
    """What a probe reads: `features(video)` -> (B, t, N, D), the readout's input; None for `trivial`."""

    name: str  # as given on the command line
    identity: str  # what makes its features unique (for the feature cache)
    encoder: SpaceTimeViT | None = None  # None: the raw tubelets (`pixels`) or no features (`trivial`)

    @property
    def reads_video(self) -> bool:
        return self.name != "trivial"

    @property
    def params(self) -> int:
        return count_parameters(self.encoder) if self.encoder is not None else 0

    @property
    def patch_size(self) -> tuple[int, int, int]:
        """The tubelet behind each feature token."""
        return self.encoder.config.patch_size if self.encoder is not None else PIXEL_PATCH

    @property
    def width(self) -> int:
        """D of the features."""
        if self.encoder is not None:
            return self.encoder.config.width
        return 3 * PIXEL_PATCH[0] * PIXEL_PATCH[1] * PIXEL_PATCH[2]

    @torch.no_grad()
    def features(self, video: torch.Tensor, readout_depth: float) -> torch.Tensor:
        """(B, C, T, H, W) video -> (B, t, h*w, D), one row per token time (t = T / tubelet frames): the
        encoder's layer at `readout_depth`, or the tubelets. Unlike the official readout's input, not resized to
        T frames: a copy of each token would double the probes' cost and add nothing to read."""
        if not self.reads_video:
            raise ValueError("backbone=trivial reads no video: it has no features")
        video = as_float_video(video)
        t = video.shape[2] // self.patch_size[0]
        if self.encoder is None:
            return rearrange(patchify(video, PIXEL_PATCH), "b (t n) d -> b t n d", t=t)
        grid = tuple(n // p for n, p in zip(video.shape[2:], self.encoder.config.patch_size, strict=True))
        return encoder_to_readout(self.encoder.features(video), grid, readout_depth, t)

    def to(self, device: torch.device | str) -> Backbone:
        if self.encoder is not None:
            self.encoder.to(device)
        return self


def load_backbone(spec: str, random_arch: Mapping[str, Any], seed: int = 0) -> Backbone:
    """`trivial`, `pixels`, `random` (a freshly initialised encoder of `random_arch`, a `model` config group,
    drawn from `seed`), or the path of a fourd safetensors file."""
    if spec in ("trivial", "pixels"):
        return Backbone(spec, spec)
    if spec == "random":
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        encoder = SpaceTimeViT(encoder_config(random_arch, "random_backbone"))
        torch.random.set_rng_state(generator_state)
        return Backbone("random", f"random:{seed}:{sorted(encoder.config.to_dict().items())}", encoder.eval())
    path = Path(spec)
    if not path.is_file():
        raise BackboneError(
            f"backbone {spec!r} is none of {', '.join(BASELINES)} and not an existing .safetensors file"
        )
    try:
        encoder = load_encoder(path)
    except CheckpointError as err:
        raise BackboneError(f"backbone {spec!r}: {err}") from err
    stat = path.stat()
    return Backbone(spec, f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}", encoder)
