"""Geometry that travels with the frames: one resize or resized crop (and flip) for video and every geometric key.

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

from fourd.data.transforms import Crop


def resize_with_geometry(item: dict[str, torch.Tensor], size: int) -> dict[str, torch.Tensor]:
    """Resize "video" uint8 (C, T, H, W) to (size, size) and every geometric key along with it.

    A plain resize, not aspect preserving (what TAP-Vid evaluation does), so x and y scale separately: the
    whole frame as the crop of :func:`resized_crop_with_geometry`.
    """
    height, width = item["video"].shape[-2:]
    return resized_crop_with_geometry(item, Crop(0, 0, height, width, False), size)


def resized_crop_with_geometry(item: dict[str, torch.Tensor], crop: Crop, size: int) -> dict[str, torch.Tensor]:
    """`crop` (in video pixels) of "video" uint8 (C, T, H, W), resized to (size, size), flipped horizontally if
    ``crop.flip``, and every geometric key mapped by the same pixel map (:func:`map_pixels`).

    "video" is resized antialiased; "depth" (T, h, w) with nearest neighbours (no blending across edges; 0 stays
    invalid; it may come at its own resolution, then the crop is rounded to whole depth pixels); "intrinsics"
    (T, 3, 3) become ``A @ K`` for the pixel map A, and a flip negates the camera's x axis: K's first column
    and "world_to_camera" (T, 4, 4)'s first row (diag(-1, 1, 1, 1) @ world_to_camera, a mirror: projections
    stay exact and relative poses stay rotations). "tracks" (P, T, 2) (x, y) and the pixels of "query_points"
    (P, 3) (t, y, x) are mapped; tracks that leave the image become "occluded". "boxes" (O, T, 4) x0 y0 x1 y1
    are mapped, ordered (x0 <= x1 after a flip) and clipped to the image, and "box_visible" (O, T) turns false
    where a clipped box covers no pixel centre (the world's test of a visible object). Other keys pass through.
    """
    height, width = item["video"].shape[-2:]
    out = dict(item)
    video = TF.resized_crop(item["video"], crop.top, crop.left, crop.height, crop.width, [size, size], antialias=True)
    out["video"] = video.flip(-1) if crop.flip else video
    if "depth" in item:
        out["depth"] = _resized_crop_depth(item["depth"], crop, (height, width), size)
    if "intrinsics" in item:
        out["intrinsics"] = pixel_map_matrix(crop, size).to(item["intrinsics"].dtype) @ item["intrinsics"]
        if crop.flip:
            out["intrinsics"][..., 0] *= -1
    if "world_to_camera" in item and crop.flip:
        out["world_to_camera"] = item["world_to_camera"].clone()
        out["world_to_camera"][..., 0, :] *= -1
    if "tracks" in item:
        out["tracks"] = map_pixels(item["tracks"], crop, size)
        if "occluded" in item:
            inside = ((out["tracks"] >= 0) & (out["tracks"] < size)).all(-1)
            out["occluded"] = item["occluded"] | ~inside
    if "query_points" in item:
        out["query_points"] = torch.cat(
            [item["query_points"][..., :1], map_pixels(item["query_points"][..., [2, 1]], crop, size).flip(-1)], -1
        )
    if "boxes" in item:
        corners = map_pixels(item["boxes"].unflatten(-1, (2, 2)), crop, size)  # (O, T, 2 corners, 2)
        ordered = torch.stack([corners.amin(-2), corners.amax(-2)], -2).clamp(0, size)
        out["boxes"] = ordered.flatten(-2)
        if "box_visible" in item:
            low, high = torch.ceil(ordered[..., 0, :] - 0.5), torch.floor(ordered[..., 1, :] - 0.5)
            out["box_visible"] = item["box_visible"] & (low <= high).all(-1)
    return out


def map_pixels(xy: torch.Tensor, crop: Crop, size: int) -> torch.Tensor:
    """Pixel coordinates (..., 2) (x, y) of the frame -> those of its `crop` resized to (size, size) and flipped
    if ``crop.flip``: ``x' = (x - left) * size / width``, then ``x' -> size - x'``; y likewise, unflipped."""
    origin = xy.new_tensor([crop.left, crop.top])
    mapped = (xy - origin) * xy.new_tensor([size / crop.width, size / crop.height])
    if crop.flip:
        mapped = torch.stack([size - mapped[..., 0], mapped[..., 1]], -1)
    return mapped


def pixel_map_matrix(crop: Crop, size: int) -> torch.Tensor:
    """:func:`map_pixels` as a float64 3 x 3 matrix on homogeneous pixels (x, y, 1)."""
    scale_x, scale_y = size / crop.width, size / crop.height
    matrix = torch.tensor(
        [[scale_x, 0.0, -crop.left * scale_x], [0.0, scale_y, -crop.top * scale_y], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
    )
    if crop.flip:
        matrix = torch.tensor([[-1.0, 0.0, size], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64) @ matrix
    return matrix


def _resized_crop_depth(depth: torch.Tensor, crop: Crop, frame: tuple[int, int], size: int) -> torch.Tensor:
    """(T, h, w) depth at its own resolution: the crop rounded to its pixels, resized by nearest neighbours."""
    (h, w), (height, width) = depth.shape[-2:], frame
    top, bottom = round(crop.top * h / height), round((crop.top + crop.height) * h / height)
    left, right = round(crop.left * w / width), round((crop.left + crop.width) * w / width)
    cropped = depth[:, top : max(bottom, top + 1), left : max(right, left + 1)]
    resized = F.interpolate(cropped[:, None], size=(size, size), mode="nearest-exact")[:, 0]
    return resized.flip(-1) if crop.flip else resized


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
