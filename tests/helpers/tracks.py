"""Small point-track cases for query sampling and TAP-Vid metrics."""

from __future__ import annotations

import numpy as np


def sampling_case() -> tuple[np.ndarray, np.ndarray]:
    """Occlusion (3, 12) and tracks (3, 12, 2): track 0 visible from frame 2, 1 never, 2 at frames 0 and 10."""
    occluded = np.ones((3, 12), dtype=bool)
    occluded[0, 2:] = False  # visible from frame 2
    occluded[2, [0, 10]] = False  # track 1 is never visible
    tracks = np.random.default_rng(0).uniform(0, 100, size=(3, 12, 2))
    return occluded, tracks
