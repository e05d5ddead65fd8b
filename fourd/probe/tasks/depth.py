"""Depth probe: one learned query per output patch (as the released ScanNet readout), log-depth per pixel."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from fourd.errors import ConfigError
from fourd.models.depth_model import depth_from_patches
from fourd.probe.metrics.depth import depth_image_metrics, mean_over_images
from fourd.probe.tasks.base import (
    ClipGeometry,
    Describe,
    FourierEmbedding,
    ProbeTask,
    Scores,
    features_on_grid,
    masked_mean,
)
from fourd.viz import colorize, save_grid

LOSSES = ("l1", "silog")


class DepthTask(ProbeTask):
    """Predicts log-depth per pixel; `l1` is L1 on metric depth, `silog` the scale-invariant log loss."""

    name = "depth"
    headline = ("abs_rel", False)

    def __init__(
        self,
        geometry: ClipGeometry,
        readout_width: int,
        output_patch: tuple[int, int, int] = (2, 8, 8),
        loss: str = "l1",
    ) -> None:
        super().__init__(geometry, readout_width)
        if loss not in LOSSES:
            raise ConfigError(f"unknown depth loss {loss!r}; choose one of {LOSSES}")
        self.output_patch = tuple(output_patch)
        self.loss_name = loss
        self.shape = (geometry.num_frames, geometry.height, geometry.width)
        grid = [n // p for n, p in zip(self.shape, self.output_patch, strict=True)]
        self.num_queries = math.prod(grid)
        self.outputs_per_query = math.prod(self.output_patch)
        centres = torch.stack(torch.meshgrid(*((torch.arange(n) + 0.5) / n for n in grid), indexing="ij"), -1)
        self.register_buffer("centres", centres.reshape(-1, 3), persistent=False)  # (Q, 3) t, y, x in [0, 1]
        self.grid = tuple(grid)
        self.embed = FourierEmbedding(3, readout_width)
        self.register_buffer("prior", torch.ones(self.shape), persistent=False)

    def query_tokens(
        self, batch: dict[str, torch.Tensor], features: torch.Tensor, learned: torch.Tensor, describe: Describe
    ) -> torch.Tensor:
        """Each query is its output patch's learned token, an embedding of where the patch is, and the features
        there (resampled to the patch grid), so that it starts from what the video shows at its place."""
        tokens = learned + self.embed(self.centres)
        return tokens + describe(features_on_grid(features, self.grid, self.shape[1:]))

    def fit_prior(self, train: dict[str, torch.Tensor]) -> None:
        """The mean depth of each pixel over the train clips (where valid)."""
        depth = train["depth"].float()
        valid = (depth > 0).float()
        self.prior = (depth * valid).sum(0) / valid.sum(0).clamp_min(1)

    def predict_prior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"depth": self.prior.expand(len(batch["depth"]), -1, -1, -1).clone()}

    def log_depth(self, out: torch.Tensor) -> torch.Tensor:
        """(B, T, H, W) log-depth: the readout predicts it relative to the prior, where an untrained head starts."""
        moves = depth_from_patches(out, self.shape, self.output_patch)[..., 0]
        return self.prior.clamp_min(1e-3).log() + moves

    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        log_pred, gt = self.log_depth(out), batch["depth"]
        valid = gt > 0
        if self.loss_name == "l1":
            return masked_mean((log_pred.exp() - gt).abs(), valid)
        diff = log_pred - gt.clamp_min(1e-6).log()
        return (masked_mean(diff.square(), valid) - 0.85 * masked_mean(diff, valid).square()).clamp_min(0).sqrt()

    def predict(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"depth": self.log_depth(out).exp()}

    def clip_scores(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> Scores:
        """The depth metrics of each frame, (B, T) per metric (nan: no valid pixel)."""
        return depth_image_metrics(preds["depth"].numpy(), batch["depth"].numpy())

    def summarize(self, scores: Scores) -> dict[str, float]:
        """Each frame averaged over its valid pixels, then the mean over every frame of every clip."""
        return mean_over_images(scores)

    def picture(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], path: Path) -> Path:
        """Per clip: frames, true depth, predicted depth (shared colour scale per clip)."""
        rows, labels = [], []
        for clip in range(min(2, len(preds["depth"]))):
            labels += [f"clip {clip}: video", "true depth", "predicted depth"]
            gt, pred = batch["depth"][clip].numpy(), preds["depth"][clip].numpy()
            limits = (float(gt[gt > 0].min()), float(gt.max()))
            rows.append(list(batch["video"][clip].permute(1, 2, 3, 0).numpy()))
            rows.append(list(colorize(gt, limits=limits)))
            rows.append(list(colorize(pred, limits=limits)))
        return save_grid(rows, path, labels)
