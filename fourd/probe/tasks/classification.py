"""Classification probe: one learned query -> class logits; top-1, averaged over clips of a video at test time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourd.probe.metrics.classification import multi_clip_accuracy, top1_accuracy
from fourd.probe.tasks.base import ClipGeometry, ProbeTask, Scores
from fourd.viz import save_grid


class ClassificationTask(ProbeTask):
    name = "classification"
    headline = ("top1", True)

    def __init__(self, geometry: ClipGeometry, readout_width: int) -> None:
        super().__init__(geometry, readout_width)
        if geometry.num_classes < 2:
            raise ValueError("classification needs a dataset with at least 2 classes")
        self.outputs_per_query = geometry.num_classes
        self.register_buffer("prior", torch.zeros(geometry.num_classes), persistent=False)

    def fit_prior(self, train: dict[str, torch.Tensor]) -> None:
        """The majority class of the train split."""
        counts = torch.bincount(train["label"], minlength=self.geometry.num_classes)
        self.prior = torch.nn.functional.one_hot(counts.argmax(), self.geometry.num_classes).float()

    def predict_prior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": self.prior.expand(len(batch["label"]), -1).clone()}

    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(out[:, 0], batch["label"])

    def predict(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"logits": out[:, 0]}

    def clip_scores(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> Scores:
        """Each clip's logits and label, and the video it is from where the data says ("index")."""
        scores = {"logits": preds["logits"].float().numpy(), "label": batch["label"].numpy()}
        if "index" in batch:
            scores["index"] = batch["index"].numpy()
        return scores

    def summarize(self, scores: Scores) -> dict[str, float]:
        """Top-1 accuracy over clips; over videos too where several clips share one (probabilities averaged)."""
        metrics = {"top1": top1_accuracy(scores["logits"], scores["label"])}
        if "index" in scores:
            metrics["top1_multi_clip"] = multi_clip_accuracy(scores["logits"], scores["label"], scores["index"])
        return metrics

    def picture(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], path: Path) -> Path:
        """First frame of each of 8 clips, with a green (correct) or red (wrong) bar under it."""
        rows = []
        for clip in range(min(8, len(preds["logits"]))):
            frame = batch["video"][clip][:, 0].permute(1, 2, 0).numpy().copy()
            correct = int(preds["logits"][clip].argmax()) == int(batch["label"][clip])
            frame[-3:] = np.array([40, 200, 40] if correct else [220, 40, 40], np.uint8)
            rows.append(frame)
        return save_grid([rows], path)
