"""TAP-Vid point-tracking metrics, query sampling and raster rescaling, with the benchmark's conventions.

Layouts (as the TAP-Vid benchmark): query points ``[t, y, x]``, tracks ``[x, y]`` in pixels, occlusion flags
True where occluded. Paper numbers are computed on a 256x256 raster: rescale with :func:`rescale_tracks` and
:func:`rescale_query_points` first. Pixel coordinates are continuous with the image edge at 0, so rescaling
is a pure per-axis scale (as TAP-Vid's own resizing).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

THRESHOLDS = (1, 2, 4, 8, 16)


def evaluation_mask(query_frames: ArrayLike, num_frames: int, query_mode: str) -> np.ndarray:
    """Frames scored for each query, (..., num_frames) bool: 'first' after the query frame, 'strided' all but it."""
    query_frames = np.round(np.asarray(query_frames)).astype(np.int64)[..., None]
    if np.any((query_frames < 0) | (query_frames >= num_frames)):
        raise ValueError(f"query frames must lie in [0, {num_frames})")
    frames = np.arange(num_frames)
    if query_mode == "first":
        return frames > query_frames
    if query_mode == "strided":
        return frames != query_frames
    raise ValueError(f"unknown query mode {query_mode!r} (expected 'first' or 'strided')")


def tapvid_metrics(
    query_points: ArrayLike,
    gt_occluded: ArrayLike,
    gt_tracks: ArrayLike,
    pred_occluded: ArrayLike,
    pred_tracks: ArrayLike,
    query_mode: str,
    get_trackwise_metrics: bool = False,
) -> dict[str, np.ndarray]:
    """TAP-Vid occlusion accuracy, < delta^x (pts_within_x) and Jaccard at 1, 2, 4, 8, 16 px, and their averages.

    query_points (B, N, 3) ``[t, y, x]``; gt/pred tracks (B, N, T, 2) ``[x, y]`` on a 256x256 raster;
    gt/pred occluded (B, N, T) bool. Returns arrays of shape (B,) (one value per video; the benchmark number is
    their plain mean) or (B, N) with ``get_trackwise_metrics``. A ratio with nothing to count is 0/0 = nan,
    as in the reference code: e.g. a 'first'-mode query at the last frame, or a video whose scored points are
    all occluded in the ground truth (pts_within and Jaccard).
    """
    query_points = np.asarray(query_points)
    gt_visible = ~np.asarray(gt_occluded, dtype=bool)
    pred_visible = ~np.asarray(pred_occluded, dtype=bool)
    gt_tracks, pred_tracks = np.asarray(gt_tracks, dtype=np.float64), np.asarray(pred_tracks, dtype=np.float64)
    scored = evaluation_mask(query_points[..., 0], gt_visible.shape[-1], query_mode)
    axes = (2,) if get_trackwise_metrics else (1, 2)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.sum(mask & scored, axis=axes)

    with np.errstate(divide="ignore", invalid="ignore"):
        metrics = {"occlusion_accuracy": count(gt_visible == pred_visible) / np.sum(scored, axis=axes)}
        squared_distance = np.sum((pred_tracks - gt_tracks) ** 2, axis=-1)
        for thresh in THRESHOLDS:
            within = squared_distance < thresh**2
            correct = within & gt_visible
            false_positive = pred_visible & (~gt_visible | ~within)
            metrics[f"pts_within_{thresh}"] = count(correct) / count(gt_visible)
            metrics[f"jaccard_{thresh}"] = count(correct & pred_visible) / (count(gt_visible) + count(false_positive))
    metrics["average_jaccard"] = np.mean([metrics[f"jaccard_{t}"] for t in THRESHOLDS], axis=0)
    metrics["average_pts_within_thresh"] = np.mean([metrics[f"pts_within_{t}"] for t in THRESHOLDS], axis=0)
    return metrics


def _scale_xy(from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Per-axis factors [x, y] taking a (height, width) raster to another."""
    return np.array([to_size[1] / from_size[1], to_size[0] / from_size[0]])


def rescale_tracks(tracks: ArrayLike, from_size: tuple[int, int], to_size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """Tracks (..., 2) ``[x, y]`` in pixels of a ``from_size`` (height, width) raster -> pixels of ``to_size``."""
    return np.asarray(tracks, dtype=np.float64) * _scale_xy(from_size, to_size)


def rescale_query_points(
    query_points: ArrayLike, from_size: tuple[int, int], to_size: tuple[int, int] = (256, 256)
) -> np.ndarray:
    """Query points (..., 3) ``[t, y, x]`` from a ``from_size`` (height, width) raster to ``to_size``; t unchanged."""
    query_points = np.array(query_points, dtype=np.float64)
    query_points[..., 1:] *= _scale_xy(from_size, to_size)[::-1]
    return query_points
