"""Spatial augmentation of whole clips: one crop and one flip shared by every frame."""

from __future__ import annotations

import torch
from torchvision.transforms import v2


class ClipTransform:
    """uint8 (T, C, H, W) -> uint8 (T, C, size, size).

    Train: random resized crop and horizontal flip. Eval: resize the short side to ``size``, centre crop.
    torchvision v2 treats leading dimensions as a batch and draws one set of parameters per call, so all
    frames of a clip get the same crop and flip.
    """

    def __init__(
        self, size: int, train: bool = True, scale: tuple[float, float] = (0.4, 1.0), flip: bool = True
    ) -> None:
        if train:
            steps = [v2.RandomResizedCrop(size, scale=scale, antialias=True)]
            steps += [v2.RandomHorizontalFlip()] if flip else []
        else:
            steps = [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
        self.transform = v2.Compose(steps)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dtype != torch.uint8 or clip.dim() != 4:
            raise ValueError(f"expected a uint8 clip (T, C, H, W), got {clip.dtype} {tuple(clip.shape)}")
        return self.transform(clip)
