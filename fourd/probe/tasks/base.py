"""What every 4D probe task is: queries for the shared attention readout, outputs per query, a loss, metrics."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Describe = Callable[[torch.Tensor], torch.Tensor]
Scores = dict[str, np.ndarray]  # per clip: arrays whose first dim is the clips


def concat_scores(parts: list[Scores]) -> Scores:
    """The scores of several batches (or ranks) as those of all their clips."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@dataclass
class ClipGeometry:
    """Shapes of the probe data that size the task's queries and outputs."""

    num_frames: int
    height: int
    width: int
    num_points: int = 0
    num_objects: int = 0
    num_classes: int = 0
    feature_width: int = 0  # D of the backbone's features (0: no features, the trivial baseline)


def features_on_grid(features: torch.Tensor, grid: tuple[int, int, int], image_size: tuple[int, int]) -> torch.Tensor:
    """(B, T, h*w, D) features of (H, W) frames, resampled (trilinear) to a (t, y, x) grid -> (B, t*y*x, D)."""
    b, t, n, d = features.shape
    h = round(math.sqrt(n * image_size[0] / image_size[1]))
    x = features.float().reshape(b, t, h, n // h, d).permute(0, 4, 1, 2, 3)
    return F.interpolate(x, size=grid, mode="trilinear", align_corners=False).flatten(2).transpose(1, 2)


def features_at(features: torch.Tensor, points: torch.Tensor, clip_shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, T', h*w, D) features of (T, H, W) clips, read (trilinearly) at (B, Q, 3) points (frame, y, x) in
    frames and pixels -> (B, Q, D)."""
    b, t, n, d = features.shape
    num_frames, height, width = clip_shape
    h = round(math.sqrt(n * height / width))
    volume = features.float().reshape(b, t, h, n // h, d).permute(0, 4, 1, 2, 3)  # B D T h w
    where = torch.stack(
        [points[..., 2] / width, points[..., 1] / height, (points[..., 0] + 0.5) / num_frames], dim=-1
    )  # x, y, t in [0, 1]: grid_sample's order
    grid = (2 * where - 1)[:, :, None, None]  # B Q 1 1 3
    sampled = F.grid_sample(volume, grid.to(volume.dtype), align_corners=False, padding_mode="border")
    return sampled[..., 0, 0].transpose(1, 2)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` (broadcast to their shape) holds; 0 where it holds nowhere. Multiplies
    rather than indexes: boolean indexing costs more than the readout on the CPU."""
    mask = mask.expand_as(values).to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1)


class FourierEmbedding(nn.Module):
    """Coordinates in [0, 1]^k -> sin/cos features at octave frequencies -> linear -> width."""

    def __init__(self, dims: int, width: int, num_bands: int = 8) -> None:
        super().__init__()
        self.register_buffer("freqs", (2.0 ** torch.arange(num_bands)) * math.pi, persistent=False)
        self.proj = nn.Linear(dims * (2 * num_bands + 1), width)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        angles = coords[..., None] * self.freqs  # (..., k, bands)
        features = torch.cat([coords[..., None], angles.sin(), angles.cos()], dim=-1).flatten(-2)
        return self.proj(features)


class ProbeTask(nn.Module, ABC):
    """A probe on a frozen encoder. The readout is owned by the probe module; the task owns what is specific.

    Subclasses set `name`, `num_queries` and `outputs_per_query`, and implement `loss`, `predict`, `clip_scores` and
    `summarize` (the metrics).
    Tasks whose queries depend on the clip (points, boxes) override `query_tokens`.
    """

    name = "task"
    num_queries = 1
    outputs_per_query = 1
    headline: tuple[str, bool] = ("", True)  # (metric, higher is better): what selects a head and what is plotted
    per_frame = False  # queries tiled over the frames, each reading its own frame (see ProbeReadout)

    def __init__(self, geometry: ClipGeometry, readout_width: int) -> None:
        super().__init__()
        self.geometry = geometry
        self.readout_width = readout_width

    def query_tokens(
        self, batch: dict[str, torch.Tensor], features: torch.Tensor, learned: torch.Tensor, describe: Describe
    ) -> torch.Tensor:
        """(B, Q, P) query tokens; by default the readout's learned queries (Q, P), shared by the batch.
        `describe` maps features (..., D) to tokens (..., P) as the readout's keys see them."""
        return learned.expand(len(features), -1, -1)

    @abstractmethod
    def fit_prior(self, train: dict[str, torch.Tensor]) -> None:
        """Learn the `trivial` baseline from the train split's targets (no video): what to predict blind."""

    @abstractmethod
    def predict_prior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The `trivial` baseline's predictions of a batch, in the format of `predict`."""

    @abstractmethod
    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss from the readout output (B, Q, outputs_per_query)."""

    @abstractmethod
    def predict(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Predictions of a batch, in the units of the ground truth."""

    @abstractmethod
    def clip_scores(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> Scores:
        """What the metrics need of each clip of a batch: (B, ...) arrays, far smaller than its predictions and
        targets. A split's scores are its batches' concatenated (`concat_scores`), in any order."""

    @abstractmethod
    def summarize(self, scores: Scores) -> dict[str, float]:
        """The metrics of a split from its clips' scores."""

    def metrics(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """The metrics of clips held whole (`preds` and `batch` of the same clips)."""
        return self.summarize(self.clip_scores(preds, batch))

    @abstractmethod
    def picture(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], path: Path) -> Path:
        """Write a PNG showing predictions against ground truth for the first clips of `batch`."""
