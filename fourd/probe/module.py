"""Lightning module for 4D probes: a frozen encoder, the shared attention readout, and a task."""

from __future__ import annotations

from functools import partial
from typing import Any

import lightning as L
import torch
from torch.optim.lr_scheduler import LambdaLR

from fourd.models.readout import AttentionReadout, ReadoutConfig, encoder_to_readout
from fourd.models.vit import SpaceTimeViT
from fourd.probe.tasks.base import ProbeTask
from fourd.schedule import warmup_cosine

TARGET_KEYS_EXCLUDED = ("video", "features")


def readout_features(encoder: SpaceTimeViT, video: torch.Tensor, readout_depth: float) -> torch.Tensor:
    """(B, C, T, H, W) uint8 or float video -> the readout's input (B, T, h*w, D), without gradients."""
    if video.dtype == torch.uint8:
        video = video.float().div(255)
    with torch.no_grad():
        feats = encoder.features(video)
    grid = tuple(n // p for n, p in zip(video.shape[2:], encoder.config.patch_size, strict=True))
    return encoder_to_readout(feats, grid, readout_depth, video.shape[2])


class ProbeModule(L.LightningModule):
    """Trains the readout and the task's own embeddings; the backbone stays frozen in eval mode.

    Batches carry either "video" (features are computed on the fly) or precomputed "features".
    """

    def __init__(
        self,
        task: ProbeTask,
        readout: ReadoutConfig,
        backbone: SpaceTimeViT | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_steps: int = 50,
    ) -> None:
        super().__init__()
        self.task = task
        self.readout = AttentionReadout(readout)
        self.backbone = backbone.requires_grad_(False).eval() if backbone is not None else None
        self.lr, self.weight_decay, self.warmup_steps = lr, weight_decay, warmup_steps
        self.test_batches: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = []
        self.test_metrics: dict[str, float] = {}

    def train(self, mode: bool = True) -> ProbeModule:
        super().train(mode)
        if self.backbone is not None:
            self.backbone.eval()  # frozen: never dropout/norm statistics in train mode
        return self

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        if "features" in batch:
            inputs = batch["features"].float()
        elif self.backbone is not None:
            inputs = readout_features(self.backbone, batch["video"], self.readout.config.readout_depth)
        else:
            raise ValueError("the batch has no precomputed features and the probe has no backbone")
        queries = self.task.query_tokens(batch, self.readout.query, inputs.shape[0])
        return self.readout(inputs, queries)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self.task.loss(self(batch), batch)
        self.log("probe/loss", loss, prog_bar=True)
        return loss

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        preds = self.task.predict(self(batch), batch)
        targets = {k: v.cpu() for k, v in batch.items() if k not in TARGET_KEYS_EXCLUDED and torch.is_tensor(v)}
        self.test_batches.append(({k: v.cpu() for k, v in preds.items()}, targets))

    def on_test_epoch_end(self) -> None:
        preds = {k: torch.cat([p[k] for p, _ in self.test_batches]) for k in self.test_batches[0][0]}
        targets = {k: torch.cat([t[k] for _, t in self.test_batches]) for k in self.test_batches[0][1]}
        self.test_metrics = self.task.metrics(preds, targets)
        self.test_batches.clear()
        for name, value in self.test_metrics.items():
            self.log(f"test/{name}", value)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = torch.optim.AdamW(self.trainable_parameters(), lr=self.lr, weight_decay=self.weight_decay)
        total = int(self.trainer.estimated_stepping_batches)
        schedule = partial(
            warmup_cosine, warmup_steps=min(self.warmup_steps, total // 2 or 1), total_steps=total, min_ratio=0.01
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, schedule), "interval": "step"},
        }
