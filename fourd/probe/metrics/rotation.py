"""Differentiable continuous 6-D rotation representation (Zhou et al. 2019) in torch, for pose probes.

Row convention (as PyTorch3D): the 6-D vector is the first two rows of the rotation matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) rotation by Gram-Schmidt on the two 3-vectors (rows 1 and 2; row 3 = 1 x 2)."""
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2, dim=-1)], dim=-2)


def matrix_to_rotation_6d(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 6): its first two rows."""
    return rotation[..., :2, :].reshape(*rotation.shape[:-2], 6)
