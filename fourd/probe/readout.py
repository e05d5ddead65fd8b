"""The probe readout: the official attention readout plus a spatial position embedding of the feature tokens."""

from __future__ import annotations

import torch

from fourd.models.readout import AttentionReadout, ReadoutConfig
from fourd.probe.tasks.base import FourierEmbedding


class ProbeReadout(AttentionReadout):
    """The official readout adds only a temporal embedding and relies on the features to say where each token
    is. Features that carry little position of their own (raw pixels, a random or barely trained encoder) then
    give every query the same average. This readout also adds an embedding of each token's (y, x) (Fourier
    features through a linear map, as the task queries embed their points), so queries can look somewhere."""

    def __init__(self, config: ReadoutConfig, grid: tuple[int, int]) -> None:
        super().__init__(config)
        h, w = grid
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        self.register_buffer("coords", torch.stack([ys, xs], -1).reshape(-1, 2), persistent=False)
        self.spatial_posenc = FourierEmbedding(2, config.encoder_width)

    def embed_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return super().embed_inputs(inputs) + self.spatial_posenc(self.coords)
