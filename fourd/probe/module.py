"""Probe heads on frozen features: several readouts, each with its own copy of the task's query embeddings and
its own learning rate and weight decay, trained at once in one pass over the same cached features."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from fourd.data.sampler import ResumableSampler
from fourd.files import atomic_write
from fourd.models.readout import AttentionReadout
from fourd.probe.features import targets_of
from fourd.probe.tasks.base import ProbeTask, Scores, concat_scores
from fourd.schedule import warmup_cosine_per_step


@dataclass(frozen=True)
class HeadSetting:
    """The optimiser settings of one head."""

    lr: float
    weight_decay: float


class ProbeHead(nn.Module):
    """A task (its queries, outputs, loss) on an attention readout."""

    def __init__(self, task: ProbeTask, readout: AttentionReadout) -> None:
        super().__init__()
        self.task, self.readout = task, readout

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """(B, Q, outputs per query) from a batch with "features" (B, T, N, D)."""
        features = batch["features"].float()
        queries = self.task.query_tokens(batch, features, self.readout.query, self.readout.describe)
        return self.readout(features, queries, self.task.geometry.num_frames if self.task.per_frame else 0)

    def predict(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The task's predictions of a batch with "features", in the units of the ground truth."""
        return self.task.predict(self(batch), batch)


class ProbeModule(L.LightningModule):
    """Trains every head on the same batches; the loss is their sum (heads share nothing, so each learns alone)."""

    def __init__(
        self,
        heads: list[ProbeHead],
        settings: list[HeadSetting],
        warmup_steps: int = 50,
        sampler: ResumableSampler | None = None,
        featurize: Callable[[dict[str, Any]], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if len(heads) != len(settings):
            raise ValueError(f"{len(heads)} heads for {len(settings)} settings")
        self.heads = nn.ModuleList(heads)
        self.settings = settings
        self.warmup_steps = warmup_steps
        self.sampler = sampler
        self.featurize = featurize  # the frozen backbone on the fly (no cached features), not part of the module
        self.stream = (0, 0)  # (epoch, position) of the next batch in the sampler's stream

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if "position" in batch:
            self.stream = (int(batch["epoch"][-1]), int(batch["position"][-1]) + 1)
        if self.featurize is not None:
            batch = {**batch, "features": self.featurize(batch)}
        losses = torch.stack([head.task.loss(head(batch), batch) for head in self.heads])
        self.log("probe/loss", losses.mean(), prog_bar=True)
        return losses.sum()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["probe_stream"] = self.stream

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The resumed run draws the batches the killed one had not reached yet, in the same order."""
        self.stream = tuple(checkpoint["probe_stream"])
        if self.sampler is not None:
            self.sampler.resume(*self.stream)

    def configure_optimizers(self) -> dict[str, Any]:
        groups = [
            {"params": head.parameters(), "lr": s.lr, "weight_decay": s.weight_decay}
            for head, s in zip(self.heads, self.settings, strict=True)
        ]
        optimizer = torch.optim.AdamW(groups)
        total = int(self.trainer.estimated_stepping_batches)
        return {
            "optimizer": optimizer,
            "lr_scheduler": warmup_cosine_per_step(optimizer, self.warmup_steps, total, min_ratio=0.01),
        }


class LatestCheckpoint(L.Callback):
    """The training state every `every_n_steps` steps in one file, replaced atomically (never half-written)."""

    def __init__(self, path: Path, every_n_steps: int) -> None:
        self.path, self.every_n_steps = Path(path), every_n_steps

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            if trainer.is_global_zero:
                atomic_write(self.path, lambda tmp: trainer.save_checkpoint(tmp, weights_only=False))
            else:  # every rank joins the save; only rank 0 writes
                trainer.save_checkpoint(self.path, weights_only=False)


Predict = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


@torch.no_grad()
def score_split(
    scorers: list[tuple[ProbeTask, Predict]],
    loader: torch.utils.data.DataLoader,
    device: torch.device | str,
    featurize: Callable[[dict[str, Any]], torch.Tensor] | None = None,
) -> list[Scores]:
    """Each (task, predict)'s clip scores on a whole split, batch by batch: a batch's predictions and targets are
    dropped once scored, so memory grows with the scores alone. Features from the batches, or computed by
    `featurize` from their clips."""
    scores: list[list[Scores]] = [[] for _ in scorers]
    for batch in loader:
        on_device = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
        if featurize is not None:
            on_device["features"] = featurize(on_device)
        targets = targets_of(batch)
        for (task, predict), kept in zip(scorers, scores, strict=True):
            preds = {k: v.cpu() for k, v in predict(on_device).items()}
            kept.append(task.clip_scores(preds, targets))
    return [concat_scores(s) for s in scores]
