"""Relative camera pose metrics: rotation error, translation direction error and end-point error."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from numpy.typing import ArrayLike

# The 8 corners of the box [-5, 5] x [-5, 5] x [0, 10] in front of the reference camera.
EPE_CORNERS = np.array(list(itertools.product((-5.0, 5.0), (-5.0, 5.0), (0.0, 10.0))))
TINY_TRANSLATION = 1e-8


def _homogeneous(poses: np.ndarray) -> np.ndarray:
    """(..., 3, 4) or (..., 4, 4) rigid transforms as (..., 4, 4)."""
    if poses.shape[-2:] == (4, 4):
        return poses
    if poses.shape[-2:] != (3, 4):
        raise ValueError(f"poses must be (..., 3, 4) or (..., 4, 4), got {poses.shape}")
    bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (*poses.shape[:-2], 1, 4))
    return np.concatenate([poses, bottom], axis=-2)


def relative_poses(world_to_camera: ArrayLike | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Camera-t-from-camera-0 transforms ``W2C_t @ inv(W2C_0)``, (..., T, 4, 4), from (..., T, 3|4, 4) extrinsics.

    A torch tensor of (..., T, 4, 4) extrinsics gives a tensor on its device (for losses); anything else float64.
    """
    if isinstance(world_to_camera, torch.Tensor):
        return world_to_camera @ torch.linalg.inv(world_to_camera[..., :1, :, :])
    w2c = _homogeneous(np.asarray(world_to_camera, dtype=np.float64))
    return w2c @ np.linalg.inv(w2c[..., :1, :, :])


def pose_errors(pred: ArrayLike, gt: ArrayLike) -> dict[str, np.ndarray]:
    """Errors of each frame 1..T-1 of relative poses pred, gt (..., T, 3|4, 4) ``[R | t]`` (camera t from camera 0;
    frame 0 is the reference), as (..., T-1) arrays. rotation_error_deg is the geodesic angle of R_pred^T R_gt;
    translation_angle_deg the angle between t_pred and t_gt, which is 0 when both norms are below 1e-8 and 90 when
    only one is (no direction to compare); end_point_error the mean distance between the 8 corners of the box
    [-5, 5] x [-5, 5] x [0, 10] mapped by each pose."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape[:-2] != gt.shape[:-2] or pred.ndim < 3 or pred.shape[-3] < 2:
        raise ValueError(f"pred and gt must be (..., T >= 2, 3|4, 4) with equal leading dims: {pred.shape}, {gt.shape}")
    rot_pred, rot_gt = pred[..., 1:, :3, :3], gt[..., 1:, :3, :3]
    t_pred, t_gt = pred[..., 1:, :3, 3], gt[..., 1:, :3, 3]

    cos_rotation = (np.sum(rot_pred * rot_gt, axis=(-2, -1)) - 1.0) / 2.0  # trace(R_pred^T R_gt) = sum of products
    rotation_error = np.degrees(np.arccos(np.clip(cos_rotation, -1.0, 1.0)))

    norm_pred, norm_gt = np.linalg.norm(t_pred, axis=-1), np.linalg.norm(t_gt, axis=-1)
    tiny_pred, tiny_gt = norm_pred < TINY_TRANSLATION, norm_gt < TINY_TRANSLATION
    norms = np.where(tiny_pred | tiny_gt, 1.0, norm_pred * norm_gt)
    angle = np.degrees(np.arccos(np.clip(np.sum(t_pred * t_gt, axis=-1) / norms, -1.0, 1.0)))
    translation_angle = np.where(tiny_pred & tiny_gt, 0.0, np.where(tiny_pred | tiny_gt, 90.0, angle))

    corners_pred = EPE_CORNERS @ np.swapaxes(rot_pred, -1, -2) + t_pred[..., None, :]
    corners_gt = EPE_CORNERS @ np.swapaxes(rot_gt, -1, -2) + t_gt[..., None, :]
    end_point_error = np.linalg.norm(corners_pred - corners_gt, axis=-1).mean(axis=-1)
    return {
        "rotation_error_deg": rotation_error,
        "translation_angle_deg": translation_angle,
        "end_point_error": end_point_error,
    }


def pose_metrics(pred: ArrayLike, gt: ArrayLike) -> dict[str, float]:
    """`pose_errors` of relative poses pred, gt (..., T, 3|4, 4), averaged over frames 1..T-1 and all leading dims."""
    return {name: float(errors.mean()) for name, errors in pose_errors(pred, gt).items()}
