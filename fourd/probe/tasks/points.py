"""Point tracking probe: a query embeds the query point (t, y, x); per frame it predicts (x, y) and visibility.

Queries follow TAP-Vid's 'first' protocol: each track is queried at its first visible frame; tracks that are
never visible are masked out of the loss and the metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fourd.probe.metrics.tapvid import rescale_query_points, rescale_tracks, tapvid_metrics
from fourd.probe.tasks.base import (
    ClipGeometry,
    Describe,
    FourierEmbedding,
    ProbeTask,
    Scores,
    features_at,
    masked_mean,
)
from fourd.viz import draw_tracks, save_grid

QUERY_MODE = "first"  # TAP-Vid's protocol for the queries of first_visible_queries: scored on later frames only


def first_visible_queries(occluded: torch.Tensor, tracks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, 3) query points [t, y, x] at each track's first visible frame, and (B, P) which tracks are usable."""
    visible = ~occluded
    usable = visible.any(-1)
    first = visible.float().argmax(-1)  # first True (0 when never visible: masked by `usable`)
    xy = torch.gather(tracks, 2, first[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]
    return torch.stack([first.to(tracks.dtype), xy[..., 1], xy[..., 0]], dim=-1), usable


class PointTrackingTask(ProbeTask):
    """Outputs per query and frame: x, y (normalised to [0, 1]) and a visibility logit."""

    name = "points"
    headline = ("average_jaccard", True)
    per_frame = True

    def __init__(self, geometry: ClipGeometry, readout_width: int, visibility_weight: float = 0.1) -> None:
        super().__init__(geometry, readout_width)
        self.num_queries = geometry.num_frames  # one learned token per frame, tiled under every track's query
        self.outputs_per_query = 3
        self.visibility_weight = visibility_weight
        self.embed = FourierEmbedding(3, readout_width)
        g = geometry
        self.register_buffer(
            "scale", torch.tensor([max(g.num_frames - 1, 1), g.height, g.width]).float(), persistent=False
        )

    def query_tokens(
        self, batch: dict[str, torch.Tensor], features: torch.Tensor, learned: torch.Tensor, describe: Describe
    ) -> torch.Tensor:
        """Per track and frame: the frame's learned token, an embedding of the query point, and the features at
        the query point (what the point looks like), so that each frame's query can find it in its frame."""
        queries, _ = first_visible_queries(batch["occluded"], batch["tracks"])
        g = self.geometry
        track = self.embed(queries / self.scale) + describe(
            features_at(features, queries, (g.num_frames, g.height, g.width))
        )
        return (track[:, :, None] + learned).flatten(1, 2)  # B (P T) width

    def fit_prior(self, train: dict[str, torch.Tensor]) -> None:
        """Nothing to learn: every track stays at its query point and is always visible."""

    def predict_prior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        queries, usable = first_visible_queries(batch["occluded"], batch["tracks"])
        still = queries[..., [2, 1]][:, :, None].expand(-1, -1, self.geometry.num_frames, -1)
        return {
            "tracks": still.clone(),
            "occluded": torch.zeros_like(batch["occluded"]),
            "query_points": queries,
            "usable": usable,
        }

    def split(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P*T, 3) -> normalised xy (B, P, T, 2), visibility logits (B, P, T). The readout predicts each
        position as a move from the query point, so an untrained head starts at the `trivial` baseline."""
        out = out.unflatten(1, (-1, self.geometry.num_frames))
        queries, _ = first_visible_queries(batch["occluded"], batch["tracks"])
        start = (queries[..., [2, 1]] / self.scale[[2, 1]])[:, :, None]
        return start + out[..., :2], out[..., 2]

    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        xy, logits = self.split(out, batch)
        _, usable = first_visible_queries(batch["occluded"], batch["tracks"])
        target = batch["tracks"] / self.scale[[2, 1]]
        visible = ~batch["occluded"] & usable[..., None]
        position = masked_mean(F.huber_loss(xy, target, delta=0.05, reduction="none"), visible[..., None])
        visibility = F.binary_cross_entropy_with_logits(logits, (~batch["occluded"]).float(), reduction="none")
        visibility = masked_mean(visibility, usable[..., None])
        return position + self.visibility_weight * visibility

    def predict(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        xy, logits = self.split(out, batch)
        queries, usable = first_visible_queries(batch["occluded"], batch["tracks"])
        return {"tracks": xy * self.scale[[2, 1]], "occluded": logits < 0, "query_points": queries, "usable": usable}

    def clip_scores(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> Scores:
        """The TAP-Vid metrics of each video (QUERY_MODE, 256x256 raster) over its usable tracks, (B,) per
        metric; nan for a video without one."""
        size = (self.geometry.height, self.geometry.width)
        per_video = []
        for i in range(len(preds["tracks"])):
            keep = preds["usable"][i].numpy()
            query = preds["query_points"][i].numpy()[keep][None]
            per_video.append(
                tapvid_metrics(
                    rescale_query_points(query, size),
                    batch["occluded"][i].numpy()[keep][None],
                    rescale_tracks(batch["tracks"][i].numpy()[keep][None], size),
                    preds["occluded"][i].numpy()[keep][None],
                    rescale_tracks(preds["tracks"][i].numpy()[keep][None], size),
                    query_mode=QUERY_MODE,
                )
            )
        return {k: np.concatenate([m[k] for m in per_video]) for k in per_video[0]}

    def summarize(self, scores: Scores) -> dict[str, float]:
        """The mean over the videos (of those where a metric is defined, as TAP-Vid's nan-mean); nan if none is."""
        return {k: float(np.nanmean(v)) if not np.isnan(v).all() else math.nan for k, v in scores.items()}

    def picture(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], path: Path) -> Path:
        """Per clip: true tracks (filled) and predicted tracks (hollow) on every frame."""
        rows, labels = [], []
        for clip in range(min(2, len(preds["tracks"]))):
            labels += [f"clip {clip}: true tracks", "predicted tracks"]
            frames = batch["video"][clip].permute(1, 2, 3, 0).numpy()
            usable = preds["usable"][clip].numpy()
            for tracks, occluded, hollow in (
                (batch["tracks"], batch["occluded"], False),
                (preds["tracks"], preds["occluded"], True),
            ):
                rows.append(
                    [
                        draw_tracks(
                            frame, tracks[clip][:, t].numpy(), (~occluded[clip][:, t]).numpy() & usable, hollow=hollow
                        )
                        for t, frame in enumerate(frames)
                    ]
                )
        return save_grid(rows, path, labels)
