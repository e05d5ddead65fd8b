"""Procedural video clips for offline runs and tests: textured layers under a moving camera."""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from fourd.data.sampler import item_seed

TIME_PER_FRAME = 1.0 / 16.0  # motion speed is per frame, so longer clips move further, not faster
WAVES_PER_TEXTURE = 4  # two blended sinusoids plus the two factors of a checker pattern
SHAPE_KINDS = ("ellipse", "rectangle", "triangle")


class SyntheticVideoDataset(Dataset):
    """Clips of textured shapes moving over a textured plane filmed by a panning, zooming, rolling camera.

    Clip ``i`` depends only on ``(seed, i)``. Coordinates are resolution independent (the frame spans
    [-1, 1]), so ``size`` changes sharpness, not content.
    """

    def __init__(
        self, num_clips: int = 1024, num_frames: int = 16, size: int = 64, num_shapes: int = 3, seed: int = 0
    ) -> None:
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.size = size
        self.num_shapes = num_shapes
        self.seed = seed

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range for {self.num_clips} clips")
        generator = torch.Generator().manual_seed(item_seed(self.seed, index))
        return {"video": render_clip(generator, self.num_frames, self.size, self.num_shapes), "skipped": 0}


def render_clip(generator: torch.Generator, num_frames: int, size: int, num_shapes: int) -> torch.Tensor:
    """Render one clip as uint8 (3, T, size, size); layer 0 is the background, the others shapes by depth."""
    num_layers = 1 + num_shapes
    time = torch.arange(num_frames) * TIME_PER_FRAME
    pixels = (torch.arange(size) + 0.5) * (2.0 / size) - 1.0

    camera_matrix, camera_offset = _camera_motion(generator, time)
    centres = random_oscillation(generator, (num_shapes, 2), time, 0.6).transpose(1, 2)
    spins = random_oscillation(generator, (num_shapes,), time, 1.5)
    # each layer's texture coordinates: the world rotated into the layer's frame, centred on the layer
    to_layer = _rotation(-torch.cat([torch.zeros(1, num_frames), spins]))
    centres = torch.cat([torch.zeros(1, num_frames, 2), centres])
    matrix = to_layer @ camera_matrix  # (L, T, 2, 2)
    offset = (to_layer @ (camera_offset - centres).unsqueeze(-1)).squeeze(-1)  # (L, T, 2)

    waves = _waves(generator, matrix, offset, pixels)  # (L, K, T, H, W)
    blend = 0.5 + 0.25 * (waves[:, 0] + waves[:, 1])
    checker_weights = random_uniform(generator, (num_layers, 1, 1, 1), 0.0, 0.8)
    checker = (0.5 + waves[:, 2] * waves[:, 3]).clamp(0.0, 1.0) * checker_weights
    colours = random_uniform(generator, (num_layers, 3, 3, 1, 1, 1))
    layers = torch.lerp(colours[:, 0], colours[:, 1], blend.unsqueeze(1))
    layers = torch.lerp(layers, colours[:, 2], checker.unsqueeze(1))  # (L, 3, T, H, W)

    video = layers[0]
    radii = random_uniform(generator, (num_shapes,), 0.2, 0.45)
    aspects = random_uniform(generator, (num_shapes,), 0.4, 1.0)
    kinds = torch.randint(len(SHAPE_KINDS), (num_shapes,), generator=generator).tolist()
    for shape, kind in enumerate(kinds):
        layer = shape + 1
        x = _affine(matrix[layer, :, 0], offset[layer, :, 0], pixels) / radii[shape]
        y = _affine(matrix[layer, :, 1], offset[layer, :, 1], pixels) / radii[shape]
        inside = _signed_distance(SHAPE_KINDS[kind], x, y, aspects[shape])
        # anti-aliased edge one pixel wide: local units times pixels per local unit
        alpha = (0.5 + inside * (radii[shape] * size / 2)).clamp(0.0, 1.0)
        video = torch.lerp(video, layers[layer], alpha.unsqueeze(0))
    return (video * 255.0).round().to(torch.uint8)


def random_uniform(
    generator: torch.Generator, shape: tuple[int, ...], low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    """Uniform samples in [low, high) from `generator`."""
    return torch.rand(shape, generator=generator) * (high - low) + low


def random_oscillation(
    generator: torch.Generator, shape: tuple[int, ...], time: torch.Tensor, amplitude: float
) -> torch.Tensor:
    """Smooth bounded paths, one random sinusoid per entry, sampled at ``time``: (*shape, T)."""
    amplitudes = random_uniform(generator, (*shape, 1), 0.0, amplitude)
    rates = random_uniform(generator, (*shape, 1), 0.5, 2.5)  # radians per unit of clip time
    phases = random_uniform(generator, (*shape, 1), 0.0, 2 * math.pi)
    return amplitudes * torch.sin(rates * time + phases)


def _camera_motion(generator: torch.Generator, time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame map from screen to world, linear part (T, 2, 2) and offset (T, 2): pan, zoom and roll."""
    roll = random_oscillation(generator, (), time, 0.25)
    zoom = torch.exp(random_oscillation(generator, (), time, 0.2))
    pan = random_oscillation(generator, (2,), time, 0.8).T
    return _rotation(roll) / zoom[:, None, None], pan


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 2, 2) for angles (...)."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)


def _waves(
    generator: torch.Generator, matrix: torch.Tensor, offset: torch.Tensor, pixels: torch.Tensor
) -> torch.Tensor:
    """Oriented sinusoids in each layer's texture coordinates, on the pixel grid: (L, K, T, H, W).

    Waves 2 and 3 are orthogonal with one frequency, so their product is a rotated checker pattern.
    """
    shape = (matrix.shape[0], WAVES_PER_TEXTURE)
    angles = random_uniform(generator, shape, 0.0, math.pi)
    angles[:, 3] = angles[:, 2] + math.pi / 2
    frequencies = random_uniform(generator, shape, 0.25, 1.5)  # cycles per half frame: periods of 1/3 frame and up
    frequencies[:, 3] = frequencies[:, 2]
    radians = (2 * math.pi * frequencies)[..., None]
    directions = torch.stack([torch.cos(angles), torch.sin(angles)], -1) * radians
    # phase = direction . (matrix @ pixel + offset) + shift
    gradient = torch.einsum("lkc,ltcd->lktd", directions, matrix)
    phases = random_uniform(generator, (*shape, 1), 0.0, 2 * math.pi)
    shift = torch.einsum("lkc,ltc->lkt", directions, offset) + phases
    return torch.sin(_affine(gradient, shift, pixels))


def _affine(gradient: torch.Tensor, shift: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """``gradient[..., 0] * x + gradient[..., 1] * y + shift`` on the pixel grid: (..., H, W)."""
    along_x = gradient[..., 0, None, None] * pixels
    along_y = gradient[..., 1, None, None] * pixels[:, None] + shift[..., None, None]
    return along_x + along_y


def _signed_distance(kind: str, x: torch.Tensor, y: torch.Tensor, aspect: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to the edge of a unit-sized shape, positive inside, in local units."""
    if kind == "ellipse":
        return (1.0 - torch.sqrt(x.square() + (y / aspect).square())) * aspect
    if kind == "rectangle":
        return torch.minimum(1.0 - x.abs(), aspect - y.abs())
    normals = torch.tensor([0.5, 7 / 6, 11 / 6]) * math.pi  # equilateral triangle, inradius 0.5
    edges = [math.cos(a) * x + math.sin(a) * y for a in normals.tolist()]
    return 0.5 - torch.maximum(torch.maximum(edges[0], edges[1]), edges[2])
