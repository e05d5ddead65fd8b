"""The paper's tracking readouts (`readout=paper`), as quoted from the paper in public ports (a secondary source).

Points: the query point (t, y, x) is Fourier-embedded (16 bands) then an MLP to the readout width, replicated over
8 temporal tiles with a learned tile embedding (the readout's learned queries); each tile's query predicts its
frames' (x, y, visibility logit, uncertainty logit), coordinates through a sigmoid, and a point is visible where
sigmoid(visibility) * sigmoid(certainty) > 0.5. Boxes: the first-frame box Fourier-embedded + MLP, one query per
object predicting every frame's box. Both read the whole clip (no per-frame queries) and share the loss, metrics
and pictures of fourd's own tasks; the certainty target and the boxes as moves of the first-frame box are ours.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fourd.errors import ConfigError
from fourd.probe.tasks.base import ClipGeometry, Describe, FourierEmbedding, masked_mean
from fourd.probe.tasks.boxes import BoxTrackingTask
from fourd.probe.tasks.points import PointTrackingTask, first_visible_queries

RASTER = 256  # TAP-Vid's raster, on which the certainty radius is measured


def fourier_mlp(dims: int, width: int, num_bands: int) -> nn.Module:
    """Coordinates in [0, 1]^dims -> Fourier features -> a two-layer MLP -> width."""
    return nn.Sequential(FourierEmbedding(dims, width, num_bands), nn.GELU(), nn.Linear(width, width))


class PaperPointTrackingTask(PointTrackingTask):
    """Outputs per tile query: (x, y, visibility logit, certainty logit) for each of its frames."""

    per_frame = False

    def __init__(
        self,
        geometry: ClipGeometry,
        readout_width: int,
        visibility_weight: float = 0.1,
        num_tiles: int = 8,
        num_bands: int = 16,
        certainty_radius: float = 8.0,
    ) -> None:
        super().__init__(geometry, readout_width, visibility_weight)
        if num_tiles < 1 or geometry.num_frames % num_tiles:
            raise ConfigError(f"probe.options.num_tiles={num_tiles} does not tile {geometry.num_frames} frames")
        self.num_queries = num_tiles
        self.outputs_per_query = 4 * geometry.num_frames // num_tiles
        self.certainty_radius = certainty_radius  # (ours) pixels of the 256 x 256 raster that count as certain
        self.embed = fourier_mlp(3, readout_width, num_bands)

    def query_tokens(
        self, batch: dict[str, torch.Tensor], features: torch.Tensor, learned: torch.Tensor, describe: Describe
    ) -> torch.Tensor:
        """Per track and tile: the embedded query point plus the tile's learned embedding."""
        queries, _ = first_visible_queries(batch["occluded"], batch["tracks"])
        return (self.embed(queries / self.scale)[:, :, None] + learned).flatten(1, 2)  # B (P tiles) width

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """(B, P*tiles, frames per tile * 4) -> (B, P, T, 4): x, y, visibility and certainty logits per frame."""
        return out.unflatten(1, (-1, self.num_queries)).unflatten(-1, (-1, 4)).flatten(2, 3)

    def split(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        decoded = self.decode(out)
        return decoded[..., :2].sigmoid(), decoded[..., 2]

    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """fourd's position and visibility loss, plus the certainty logit learning where the position is within
        `certainty_radius` of the truth (on visible frames)."""
        xy, _ = self.split(out, batch)
        _, usable = first_visible_queries(batch["occluded"], batch["tracks"])
        error = ((xy - batch["tracks"] / self.scale[[2, 1]]) * RASTER).norm(dim=-1)
        near = (error < self.certainty_radius).float()
        certainty = F.binary_cross_entropy_with_logits(self.decode(out)[..., 3], near, reduction="none")
        visible = ~batch["occluded"] & usable[..., None]
        return super().loss(out, batch) + self.visibility_weight * masked_mean(certainty, visible)

    def predict(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        decoded = self.decode(out)
        visible = decoded[..., 2].sigmoid() * decoded[..., 3].sigmoid() > 0.5
        return {**super().predict(out, batch), "occluded": ~visible}


class PaperBoxTrackingTask(BoxTrackingTask):
    """One query per object; it outputs (x0, y0, x1, y1) for every frame."""

    per_frame = False

    def __init__(self, geometry: ClipGeometry, readout_width: int, num_bands: int = 16) -> None:
        super().__init__(geometry, readout_width)
        self.num_queries = 1  # a learned embedding added to every object's query
        self.outputs_per_query = 4 * geometry.num_frames
        self.embed = fourier_mlp(4, readout_width, num_bands)

    def query_tokens(
        self, batch: dict[str, torch.Tensor], features: torch.Tensor, learned: torch.Tensor, describe: Describe
    ) -> torch.Tensor:
        """Per object: the embedded first-frame box plus the learned query."""
        return self.embed(batch["boxes"][:, :, 0] / self.scale) + learned  # B O width

    def boxes(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return super().boxes(out.unflatten(-1, (self.geometry.num_frames, 4)).flatten(1, 2), batch)
