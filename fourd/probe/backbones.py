"""Frozen backbones for probes: `random` (the baseline) or any fourd safetensors (ours or converted official)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fourd.conf import encoder_config
from fourd.models.vit import SpaceTimeViT, count_parameters
from fourd.weights import load_encoder


@dataclass
class Backbone:
    encoder: SpaceTimeViT
    name: str  # as given on the command line
    identity: str  # what makes its features unique (for the feature cache)

    @property
    def params(self) -> int:
        return count_parameters(self.encoder)


def load_backbone(spec: str, random_arch: Mapping[str, Any], seed: int = 0) -> Backbone:
    """`random`: a freshly initialised encoder of `random_arch` (a `model` config group); else a path."""
    if spec == "random":
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        encoder = SpaceTimeViT(encoder_config(random_arch))
        torch.random.set_rng_state(generator_state)
        return Backbone(encoder.eval(), "random", f"random:{seed}:{sorted(encoder.config.to_dict().items())}")
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"backbone {spec!r} is neither 'random' nor an existing .safetensors file")
    stat = path.stat()
    return Backbone(load_encoder(path), spec, f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
