"""Depth metrics (standard Eigen definitions)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _prepare(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flatten (..., H, W) inputs to (images, pixels) float64 arrays and a bool mask that excludes gt <= 0."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim < 2:
        raise ValueError(f"pred and gt must share a (..., H, W) shape, got {pred.shape} and {gt.shape}")
    mask = gt > 0
    if valid is not None:
        mask &= np.broadcast_to(np.asarray(valid, dtype=bool), gt.shape)
    pixels = gt.shape[-2] * gt.shape[-1]
    return pred.reshape(-1, pixels), gt.reshape(-1, pixels), mask.reshape(-1, pixels)


def depth_image_metrics(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None) -> dict[str, np.ndarray]:
    """AbsRel, delta1-3 and RMSE of each image of depth maps ``pred``, ``gt`` of shape (..., H, W), as (...) arrays:
    each image averaged over its valid pixels (``valid`` and gt > 0; ``valid`` defaults to gt > 0); nan for an
    image without a valid pixel. pred <= 0 fails every delta."""
    leading = np.shape(gt)[:-2]
    pred, gt, mask = _prepare(pred, gt, valid)
    counts = mask.sum(axis=1)
    gt = np.where(mask, gt, 1.0)  # invalid pixels are masked out below; this only keeps divisions finite
    positive = pred > 0
    safe_pred = np.where(positive, pred, 1.0)
    ratio = np.where(positive, np.maximum(safe_pred / gt, gt / safe_pred), np.inf)

    def image_mean(x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):  # 0/0: an image without a valid pixel
            return (np.where(mask, x, 0.0).sum(axis=1) / counts).reshape(leading)

    metrics = {"abs_rel": image_mean(np.abs(pred - gt) / gt)}
    for k in (1, 2, 3):
        metrics[f"delta{k}"] = image_mean(ratio < 1.25**k)
    metrics["rmse"] = np.sqrt(image_mean((pred - gt) ** 2))
    return metrics


def mean_over_images(per_image: dict[str, np.ndarray]) -> dict[str, float]:
    """The split's depth metrics from `depth_image_metrics` of all its images: the mean over the images that have
    a valid pixel. Raises ValueError when none has."""
    scored = ~np.isnan(per_image["delta1"])  # a fraction of pixels: nan only without one (a nan prediction fails)
    if not scored.any():
        raise ValueError("no valid depth pixel")
    return {name: float(values[scored].mean()) for name, values in per_image.items()}


def depth_metrics(pred: ArrayLike, gt: ArrayLike, valid: ArrayLike | None = None) -> dict[str, float]:
    """AbsRel, delta1-3 and RMSE of depth maps ``pred``, ``gt`` of shape (..., H, W) (leading dims are images):
    `depth_image_metrics`, then the mean over the images with a valid pixel (ValueError when there is none)."""
    return mean_over_images(depth_image_metrics(pred, gt, valid))
