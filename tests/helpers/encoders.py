"""Encoder files for tests: a fourd encoder saved as training's export would write it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from fourd.models.vit import SpaceTimeViT
from fourd.weights import save_weights


def save_encoder(path: str | Path, encoder: SpaceTimeViT, state: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Save an encoder (or a given state dict of it, e.g. one with a damaged tensor) with its config."""
    return save_weights(path, state if state is not None else encoder.state_dict(), "encoder", encoder.config.to_dict())
