"""Geometry that travels with the frames: one resize for video, depth, intrinsics, tracks and query points.

Pixel coordinates put (0, 0) at the top-left corner of the image, so the centre of pixel (row i, column j)
is (j + 0.5, i + 0.5): the convention of TAP-Vid points and of intrinsics normalised by the image size
(RealEstate10K). Resizing an image then scales every coordinate exactly by new size / old size.
Intrinsics calibrated with OpenCV (pixel centres at integers, e.g. ScanNet) go through
:func:`centres_to_corners` first.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF


def resize_with_geometry(item: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Resize "video" uint8 (C, T, H, W) to (size, size) and every geometric key along with it.

    A plain resize, not aspect preserving (what TAP-Vid evaluation does), so x and y scale separately:
    "depth" (T, h, w) is resized with nearest neighbours (no blending across edges; it may come at its own
    resolution), "intrinsics" (T, 3, 3) and "tracks" (P, T, 2) (x, y) scale with the video's width and
    height, and so do the pixels of "query_points" (P, 3) (t, y, x). Other keys pass through.
    """
    height, width = item["video"].shape[-2:]
    scale_x, scale_y = size / width, size / height
    resized = dict(item)
    resized["video"] = TF.resize(item["video"], [size, size], antialias=True)
    if "depth" in item:
        resized["depth"] = F.interpolate(item["depth"][:, None], size=(size, size), mode="nearest-exact")[:, 0]
    if "intrinsics" in item:
        resized["intrinsics"] = torch.diag(torch.tensor([scale_x, scale_y, 1.0])) @ item["intrinsics"]
    if "tracks" in item:
        resized["tracks"] = item["tracks"] * torch.tensor([scale_x, scale_y])
    if "query_points" in item:
        resized["query_points"] = item["query_points"] * torch.tensor([1.0, scale_y, scale_x])
    return resized


def intrinsics_matrix(fx: np.ndarray, fy: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Pinhole matrices (..., 3, 3) from focal lengths and principal points of shape (...)."""
    zeros, ones = np.zeros_like(fx), np.ones_like(fx)
    rows = [[fx, zeros, cx], [zeros, fy, cy], [zeros, zeros, ones]]
    return np.stack([np.stack(row, -1) for row in rows], -2)


def centres_to_corners(intrinsics: np.ndarray) -> np.ndarray:
    """OpenCV intrinsics (pixel centres at integer coordinates) in fourd's convention (centres at +0.5)."""
    shifted = np.array(intrinsics, dtype=np.float64)
    shifted[..., :2, 2] += 0.5
    return shifted


def homogeneous(poses: np.ndarray) -> np.ndarray:
    """(..., 3, 4) rigid transforms as (..., 4, 4) matrices."""
    bottom = np.broadcast_to(np.array([0.0, 0.0, 0.0, 1.0]), (*poses.shape[:-2], 1, 4))
    return np.concatenate([poses, bottom], -2)
