"""Box IoU and box-tracking metrics for ``[x0, y0, x1, y1]`` boxes."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _area(box: np.ndarray) -> np.ndarray:
    return np.clip(box[..., 2] - box[..., 0], 0, None) * np.clip(box[..., 3] - box[..., 1], 0, None)


def box_iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise (broadcast) IoU of (..., 4) ``[x0, y0, x1, y1]`` boxes; 0 where the union is empty (never nan)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    intersection = _area(np.concatenate([np.maximum(a[..., :2], b[..., :2]), np.minimum(a[..., 2:], b[..., 2:])], -1))
    union = _area(a) + _area(b) - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)


def scored_box_ious(pred: ArrayLike, gt: ArrayLike, visible: ArrayLike | None = None) -> np.ndarray:
    """IoU of tracked boxes pred, gt (..., T, 4) on frames 1..T-1, (..., T-1): frame 0 holds the given query box
    and is not scored; nan where ``visible`` (..., T) is False (default: all visible)."""
    iou = box_iou(pred, gt)[..., 1:]
    if visible is None:
        return iou
    return np.where(np.asarray(visible, dtype=bool)[..., 1:], iou, np.nan)


def pooled_box_metrics(ious: np.ndarray) -> dict[str, float]:
    """Mean IoU and success rate (IoU > 0.5) pooled over every scored box of `scored_box_ious` (nan: not scored).
    Raises ValueError when nothing is scored."""
    scored = ious[~np.isnan(ious)]
    if not scored.size:
        raise ValueError("no visible box after the query frame")
    return {"mean_iou": float(scored.mean()), "success_50": float(np.mean(scored > 0.5))}


def box_tracking_metrics(pred: ArrayLike, gt: ArrayLike, visible: ArrayLike | None = None) -> dict[str, float]:
    """Mean IoU and success rate (IoU > 0.5) of tracked boxes pred, gt (..., T, 4), pooled over frames 1..T-1 of
    all tracks where ``visible`` (..., T) is True (default: all). Raises ValueError when nothing is scored."""
    return pooled_box_metrics(scored_box_ious(pred, gt, visible))
