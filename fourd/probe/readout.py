"""The probe readout: the official attention readout plus a spatial position embedding of the feature tokens,
and queries that may each read one frame."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from fourd.models.readout import AttentionReadout, ReadoutConfig
from fourd.probe.tasks.base import FourierEmbedding


class ProbeReadout(AttentionReadout):
    """The official readout adds only a temporal embedding and relies on the features to say where each token
    is. Features that carry little position of their own (raw pixels, a random or barely trained encoder) then
    give every query the same average. This readout also adds an embedding of each token's (y, x) (Fourier
    features through a linear map, as the task queries embed their points), so queries can look somewhere.

    With `per_frame_of=T`, the queries are tiled over the clip's frames ((k, t) order) and query (k, t) reads the
    tokens of frame t alone (those of its tubelet): a tracking query then finds its point among one frame's
    tokens instead of averaging the clip. `spatial=False` leaves the spatial embedding out (the paper's readouts)."""

    def __init__(self, config: ReadoutConfig, grid: tuple[int, int], spatial: bool = True) -> None:
        super().__init__(config)
        h, w = grid
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        self.register_buffer("coords", torch.stack([ys, xs], -1).reshape(-1, 2), persistent=False)
        self.spatial_posenc = FourierEmbedding(2, config.encoder_width) if spatial else None
        nn.init.zeros_(self.head.weight)  # tasks predict moves away from their prior: a new head predicts the prior
        nn.init.zeros_(self.head.bias)

    def embed_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        embedded = super().embed_inputs(inputs)
        return embedded if self.spatial_posenc is None else embedded + self.spatial_posenc(self.coords)

    def describe(self, features: torch.Tensor) -> torch.Tensor:
        """Features (..., D) at a query's place -> (..., P) through the readout's own key map, so that a query
        made of them matches the tokens that look alike (a correlation) from the first step."""
        return self.key(self.norm(features))

    def forward(
        self, inputs: torch.Tensor, query_tokens: torch.Tensor | None = None, per_frame_of: int = 0
    ) -> torch.Tensor:
        """(B, t, N, D) features -> (B, Q, num_classes); `per_frame_of=T`: the queries are tiled over T frames."""
        if not per_frame_of:
            return super().forward(inputs, query_tokens)
        if query_tokens is None:
            raise ValueError("per-frame queries are the task's: pass query_tokens")
        t = inputs.shape[1]  # token times, each covering r frames
        if per_frame_of % t:
            raise ValueError(f"{t} token times do not tile {per_frame_of} frames: per-frame queries cannot be placed")
        r = per_frame_of // t
        x = rearrange(self.embed_inputs(inputs), "b t n d -> (b t) n d")
        out = self.attend(x, rearrange(query_tokens, "b (k t r) p -> (b t) (k r) p", t=t, r=r))
        return rearrange(out, "(b t) (k r) c -> b (k t r) c", t=t, r=r)
