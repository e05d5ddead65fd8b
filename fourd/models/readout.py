"""The official 4DS attention readout (the depth model built on it is depth_model.py).

Numerically the official ``EncoderToReadout`` + ``AttentionReadout(match_vjepa_implementation=True)``: pick one
feature of the encoder list, resize it along time with jax's cubic weights, then cross-attend learned queries
(one per output patch for depth) to the normalised features and decode each query into a patch of values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange
from timm.layers import Mlp
from torch import nn

from fourd.models.attention import dot_product_attention
from fourd.models.resize import resize_time
from fourd.models.sizes import RELEASE_READOUT_DEPTH
from fourd.models.vit import (
    LN_EPS,
    TanhGELU,
    config_dict,
    init_transformer_weights,
)


@dataclass
class ReadoutConfig:
    """An attention readout; the defaults are the released ViT-B ScanNet depth readout."""

    width: int = 1024  # num_params P: width of keys, values and queries
    heads: int = 16
    num_queries: int = 6272  # one per output patch: 16*224*224 / (2*8*8)
    num_classes: int = 128  # outputs per query: prod(output_patch) * output_channels
    mlp: int = 4096
    num_frames: int = 16  # features are resized to this many frames; one temporal embedding each
    readout_depth: float = RELEASE_READOUT_DEPTH
    output_patch: tuple[int, int, int] = (2, 8, 8)
    output_channels: int = 1
    encoder_width: int = 768
    attn_backend: str = "auto"

    def __post_init__(self) -> None:
        self.output_patch = tuple(self.output_patch)
        if not 0 < self.readout_depth <= 1:
            raise ValueError(f"readout_depth {self.readout_depth} is not a relative depth in (0, 1]")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ReadoutConfig:
        return cls(**config)


def readout_layer_index(num_features: int, readout_depth: float) -> int:
    """Index of the feature the official readout reads: int(num_features * readout_depth) - 1."""
    index = int(num_features * readout_depth) - 1
    if not 0 <= index < num_features:  # the official code would silently wrap to features[-1]
        raise ValueError(f"readout_depth {readout_depth} selects no feature of {num_features}")
    return index


def encoder_to_readout(
    features: Sequence[torch.Tensor], grid: tuple[int, int, int], readout_depth: float, num_frames: int
) -> torch.Tensor:
    """The official EncoderToReadout: features[index] (B, t*h*w, D) -> (B, num_frames, h*w, D)."""
    x = features[readout_layer_index(len(features), readout_depth)]
    t, h, w = grid
    x = rearrange(x, "b (t h w) d -> b t (h w) d", t=t, h=h, w=w)
    return resize_time(x, num_frames, dim=1)


class AttentionReadout(nn.Module):
    """Learned queries cross-attend to (B, T, N, D) features; each query is decoded to num_classes values.

    Subclasses with task queries override `queries`, or callers pass `query_tokens` to `forward`.
    """

    def __init__(self, config: ReadoutConfig) -> None:
        super().__init__()
        c = config
        self.config = c
        self.norm = nn.LayerNorm(c.encoder_width, eps=LN_EPS)
        self.temporal_posenc = nn.Parameter(torch.empty(c.num_frames, 1, c.encoder_width))
        self.key = nn.Linear(c.encoder_width, c.width)
        self.value = nn.Linear(c.encoder_width, c.width)
        self.query = nn.Parameter(torch.empty(c.num_queries, c.width))
        self.proj = nn.Linear(c.width, c.width)
        self.norm_mlp = nn.LayerNorm(c.width, eps=LN_EPS)
        self.mlp = Mlp(c.width, c.mlp, act_layer=TanhGELU)
        self.head = nn.Linear(c.width, c.num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """Xavier-uniform linears, truncated-normal(0.02) queries and temporal embedding, unit LayerNorms."""
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.query, std=0.02)
        nn.init.trunc_normal_(self.temporal_posenc, std=0.02)

    def queries(self, batch_size: int) -> torch.Tensor:
        """(B, Q, P) query tokens: the learned queries, shared by the batch and used without projection."""
        return self.query.expand(batch_size, -1, -1)

    def embed_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T, N, D) features, normalised, plus the temporal position embedding: what keys and values read."""
        return self.norm(inputs) + self.temporal_posenc

    def forward(self, inputs: torch.Tensor, query_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, N, D) features -> (B, Q, num_classes); `query_tokens` (B, Q, P) replace `queries(B)`."""
        if inputs.shape[1] != self.config.num_frames:
            raise ValueError(f"readout expects {self.config.num_frames} frames, got inputs {tuple(inputs.shape)}")
        x = self.embed_inputs(inputs).flatten(1, 2)  # B (T N) D
        return self.attend(x, self.queries(x.shape[0]) if query_tokens is None else query_tokens)

    def attend(self, x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """(B, M, D) embedded inputs and (B, Q, P) query tokens -> (B, Q, num_classes): attention, MLP, head."""
        q, k, v = (
            rearrange(y, "b n (h d) -> b n h d", h=self.config.heads) for y in (query, self.key(x), self.value(x))
        )
        attended = rearrange(dot_product_attention(q, k, v, self.config.attn_backend), "b q h d -> b q (h d)")
        token = query + self.proj(attended)
        token = token + self.mlp(self.norm_mlp(token))
        return self.head(token)
