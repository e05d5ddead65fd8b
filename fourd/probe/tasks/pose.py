"""Camera pose probe: one query per frame predicts the camera pose relative to frame 0 (6-D rotation + t)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F

from fourd.probe.metrics.pose import pose_errors, relative_poses
from fourd.probe.metrics.rotation import matrix_to_rotation_6d, rotation_6d_to_matrix
from fourd.probe.tasks.base import ClipGeometry, Describe, ProbeTask, Scores
from fourd.viz import save_grid


class CameraPoseTask(ProbeTask):
    """Per frame: a continuous 6-D rotation and a translation of camera t relative to camera 0."""

    name = "pose"
    headline = ("rotation_error_deg", False)

    def __init__(self, geometry: ClipGeometry, readout_width: int, translation_weight: float = 1.0) -> None:
        super().__init__(geometry, readout_width)
        self.num_queries = geometry.num_frames
        self.outputs_per_query = 9
        self.translation_weight = translation_weight
        self.register_buffer("identity_6d", matrix_to_rotation_6d(torch.eye(3)), persistent=False)

    def query_tokens(
        self, batch: dict[str, torch.Tensor], features: torch.Tensor, learned: torch.Tensor, describe: Describe
    ) -> torch.Tensor:
        """Per frame: its learned token and how the frame's features differ from frame 0's, place by place
        (what moved), summed over the places."""
        change = describe(features) - describe(features[:, :1])  # B t N P
        per_time = change.mean(2)  # B t P
        frames = per_time.repeat_interleave(self.geometry.num_frames // features.shape[1], dim=1)
        return learned + frames

    def fit_prior(self, train: dict[str, torch.Tensor]) -> None:
        """Nothing to learn: the camera never moves (identity relative poses)."""

    def predict_prior(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        eye = torch.eye(4, dtype=batch["world_to_camera"].dtype)
        return {"poses": eye.expand(*batch["world_to_camera"].shape[:2], 4, 4).clone()}

    def poses(self, out: torch.Tensor) -> torch.Tensor:
        """(B, T, 9) -> relative poses (B, T, 4, 4)."""
        pose = torch.zeros(*out.shape[:-1], 4, 4, dtype=out.dtype, device=out.device)
        pose[..., :3, :3] = rotation_6d_to_matrix(self.rotation_6d(out))
        pose[..., :3, 3] = out[..., 6:]
        pose[..., 3, 3] = 1
        return pose

    def rotation_6d(self, out: torch.Tensor) -> torch.Tensor:
        """The 6-D rotation: a move from the identity, where an untrained head (zero output) starts."""
        return out[..., :6] + self.identity_6d

    def loss(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        target = relative_poses(batch["world_to_camera"])
        rotation = F.l1_loss(self.rotation_6d(out), matrix_to_rotation_6d(target[..., :3, :3]))
        return rotation + self.translation_weight * F.l1_loss(out[..., 6:], target[..., :3, 3])

    def predict(self, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"poses": self.poses(out)}

    def clip_scores(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> Scores:
        """The pose errors of each frame after the first, (B, T-1) per metric."""
        return pose_errors(preds["poses"].numpy(), relative_poses(batch["world_to_camera"]).numpy())

    def summarize(self, scores: Scores) -> dict[str, float]:
        """The mean over every frame after the first of every clip."""
        return {name: float(errors.mean()) for name, errors in scores.items()}

    def picture(self, preds: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], path: Path) -> Path:
        """Top-down (x, z) camera paths of the first clips: true (solid) and predicted (dashed), with a legend."""
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # after choosing the non-interactive backend

        clips = min(4, len(preds["poses"]))
        fig, axes = plt.subplots(1, clips, figsize=(3 * clips, 3), squeeze=False)
        true = relative_poses(batch["world_to_camera"])
        for clip, ax in enumerate(axes[0]):
            for poses, style, label in ((true[clip], "-", "true"), (preds["poses"][clip], "--", "predicted")):
                centres = -(poses[:, :3, :3].transpose(1, 2) @ poses[:, :3, 3:])[..., 0].numpy()
                ax.plot(centres[:, 0], centres[:, 2], style, marker="o", markersize=3, label=label)
            ax.set_title(f"clip {clip}: camera path from above (x, z)", fontsize=8)
            ax.legend(fontsize=7)
            ax.set_aspect("equal", adjustable="datalim")
        fig.tight_layout()
        fig.canvas.draw()
        image = [[np.asarray(fig.canvas.buffer_rgba())[..., :3]]]
        plt.close(fig)
        return save_grid(image, path)
