"""Box tracking probe: a query embeds the first-frame box of an object; it predicts the box in every frame."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from fourd.probe.metrics.boxes import pooled_box_metrics, scored_box_ious
from fourd.probe.tasks.base import (
    ClipGeometry,
    Describe,
    FourierEmbedding,
    ProbeTask,
    Scores,
    features_at,
    masked_mean,
)
from fourd.viz import draw_boxes, save_grid

BOX_SAMPLES = 3  # the content of a box query: features at 3 x 3 points inside the box, averaged


class BoxTrackingTask(ProbeTask):
    """Outputs per query and frame: x0, y0, x1, y1 normalised to [0, 1]. Objects hidden at frame 0
    cannot be queried and are masked out."""

    name = "boxes"
    headline = ("mean_iou", True)
    per_frame = True

    def __init__(self, geometry: ClipGeometry, readout_width: int) -> None:
        super().__init__(geometry, readout_width)
        self.num_queries = geometry.num_frames  # one learned token per frame, tiled under every object's query
        self.outputs_per_query = 4
        self.embed = FourierEmbedding(4, readout_width)
        inside = (torch.arange(BOX_SAMPLES) + 0.5) / BOX_SAMPLES
        self.register_buffer("inside", torch.cartesian_prod(inside, inside), persistent=False)  # (S, 2) y, x
        g = geometry
        self.register_buffer("scale", torch.tensor([g.width, g.height, g.width, g.height]).float(), persistent=False)

    def query_tokens(
        self, batch: dict[str, torch.Tensor], features: torch.Tensor, learned: torch.Tensor, describe: Describe
    ) -> torch.Tensor:
        """Per object and frame: the frame's learned token, an embedding of the first-frame box, and the mean
        of the features inside that box (what the object looks like)."""
        first = batch["boxes"][:, :, 0]  # B O 4: x0 y0 x1 y1 in pixels
        g = self.geometry
        top_left, size = first[..., [1, 0]], first[..., [3, 2]] - first[..., [1, 0]]
        yx = top_left[:, :, None] + self.inside * size[:, :, None]  # B O S 2
        points = torch.cat([torch.zeros_like(yx[..., :1]), yx], -1).flatten(1, 2)  # frame 0
        sampled = features_at(features, points, (g.num_frames, g.height, g.width))
        obj = self.embed(first / self.scale) + describe(sampled.unflatten(1, (first.shape[1], -1)).mean(2))
        return (obj[:, :, None] + learned).flatten(1, 2)  # B (O T) width

    def fit_prior(self, train: dict[str, torch.Tensor]) -> None:
        """Nothing to learn: each object's first-frame box is held still."""

    def predict_prior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"boxes": batch["boxes"][:, :, :1].expand_as(batch["boxes"]).clone()}

    def boxes(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, O*T, 4) -> normalised boxes (B, O, T, 4) with ordered corners (x0 <= x1, y0 <= y1). The readout
        predicts each box as a move of the first-frame box, so an untrained head starts at `trivial`."""
        moves = out.unflatten(1, (-1, self.geometry.num_frames))
        corners = (batch["boxes"][:, :, :1] / self.scale + moves).unflatten(-1, (2, 2))  # two (x, y) corners
        return torch.cat([corners.min(dim=-2).values, corners.max(dim=-2).values], dim=-1)

    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target = batch["boxes"] / self.scale
        mask = batch["box_visible"] & batch["box_visible"][:, :, :1]
        return masked_mean(F.l1_loss(self.boxes(out, batch), target, reduction="none"), mask[..., None])

    def predict(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"boxes": self.boxes(out, batch) * self.scale}

    def clip_scores(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> Scores:
        """The IoU of each object's box on each frame after the first, (B, O, T-1); nan where the object is not
        visible there or was not on the query frame."""
        visible = batch["box_visible"] & batch["box_visible"][:, :, :1]
        return {"iou": scored_box_ious(preds["boxes"].numpy(), batch["boxes"].numpy(), visible.numpy())}

    def summarize(self, scores: Scores) -> dict[str, float]:
        """Mean IoU and success rate pooled over every scored box of every clip."""
        return pooled_box_metrics(scores["iou"])

    def picture(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], path: Path) -> Path:
        """Per clip, every frame with true boxes (thick) and predicted boxes (thin)."""
        rows = []
        for clip in range(min(2, len(preds["boxes"]))):
            frames = batch["video"][clip].permute(1, 2, 3, 0).numpy()
            queried = batch["box_visible"][clip][:, 0].numpy()
            row = []
            for t, frame in enumerate(frames):
                image = Image.fromarray(frame).resize((frame.shape[1] * 4, frame.shape[0] * 4), Image.NEAREST)
                visible = batch["box_visible"][clip][:, t].numpy() & queried
                draw_boxes(image, batch["boxes"][clip][:, t].numpy(), visible)
                draw_boxes(image, preds["boxes"][clip][:, t].numpy(), visible, dashed=True)
                row.append(image)
            rows.append(row)
        labels = [f"clip {clip}: true thick, predicted thin" for clip in range(len(rows))]
        return save_grid(rows, path, labels)
