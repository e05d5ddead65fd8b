"""jax.image.resize(method=CUBIC) along one axis, as an explicit weight matrix.

The official readout resizes encoder features along time with jax's cubic resize. PyTorch's
``interpolate(mode='bicubic')`` differs (Keys a=-0.75, clamped borders), so the weights are written out here.
"""

from __future__ import annotations

import numpy as np
import torch


def keys_cubic(x: np.ndarray) -> np.ndarray:
    """The Keys cubic convolution kernel with a = -0.5 (jax's CUBIC), zero for |x| >= 2."""
    x = np.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return np.where(x >= 2.0, 0.0, np.where(x >= 1.0, far, near))


def cubic_resize_matrix(in_size: int, out_size: int) -> torch.Tensor:
    """(out_size, in_size) float32 weights of jax.image.resize(CUBIC, antialias=True) along one axis.

    As jax's ``compute_weight_mat`` (computed here in float64): output o samples the input at the half-pixel
    centre s = (o + 0.5) * in / out - 0.5; input j gets weight keys_cubic(|s - j| / k) with
    k = max(in / out, 1) (upsampling: k = 1, the plain 4-tap kernel; downsampling: the kernel is widened by
    in / out, i.e. low-pass filtered, jax's antialias default). Only real inputs 0 <= j < in_size exist, so
    taps beyond the borders are dropped (not clamped or zero-padded), and each row is renormalised to sum 1
    (raw row sums stay above 0.5, so jax's zeroing of rows that sum to ~0 never applies to a resize).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    if in_size == out_size:
        return torch.eye(in_size)
    kernel_scale = max(in_size / out_size, 1.0)
    sample = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    weights = keys_cubic((sample[:, None] - np.arange(in_size)[None, :]) / kernel_scale)
    return torch.from_numpy(weights / weights.sum(axis=1, keepdims=True)).float()


def resize_time(x: torch.Tensor, num_frames: int, dim: int = 1) -> torch.Tensor:
    """Resize axis `dim` of `x` to `num_frames` with jax's cubic weights; the identity when sizes match."""
    size = x.shape[dim]
    if size == num_frames:
        return x
    weights = cubic_resize_matrix(size, num_frames).to(device=x.device, dtype=x.dtype)
    return torch.einsum("...i,oi->...o", x.movedim(dim, -1), weights).movedim(-1, dim)
