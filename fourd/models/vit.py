"""Space-time ViT encoder, numerically the official 4DS encoder.

Tubelet Conv3d -> learned (T', h, w, D) position embedding -> flatten (T' h w) -> pre-norm blocks
(LayerNorm eps 1e-6, tanh GELU, queries scaled by 1/sqrt(head_dim)). No CLS token, no final norm.
Input video is (B, C, T, H, W) float in [0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from timm.layers import Mlp
from torch import nn
from torch.utils.checkpoint import checkpoint

from fourd.models.attention import BACKENDS, dot_product_attention
from fourd.models.sizes import resolve_size

LN_EPS = 1e-6  # flax LayerNorm default (torch's is 1e-5)
TanhGELU = partial(nn.GELU, approximate="tanh")  # flax nn.gelu default


def config_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON-ready values (tuples become lists), for checkpoint metadata."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def check_sizes(what: str, **sizes: int | tuple[int, ...]) -> None:
    """Raise ValueError naming every size that is not a positive whole number (or tuple of them)."""

    def positive(value: int | tuple[int, ...]) -> bool:
        values = value if isinstance(value, tuple) else (value,)
        return all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in values)

    bad = [f"{name}={value}" for name, value in sizes.items() if not positive(value)]
    if bad:
        raise ValueError(f"{what} sizes must be positive whole numbers, got {', '.join(bad)}")
    if "width" in sizes and "heads" in sizes and sizes["width"] % sizes["heads"]:
        raise ValueError(f"{what} width {sizes['width']} is not divisible by heads {sizes['heads']}")


@dataclass
class ViTConfig:
    """Everything needed to rebuild an encoder; stored in checkpoint metadata."""

    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp: int = 3072
    patch_size: tuple[int, int, int] = (2, 16, 16)
    num_frames: int = 16
    image_size: tuple[int, int] = (224, 224)
    in_chans: int = 3
    attn_backend: str = "auto"

    def __post_init__(self) -> None:
        size = self.image_size
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.patch_size = tuple(self.patch_size)
        if len(self.patch_size) != 3:
            raise ValueError(f"patch_size {list(self.patch_size)} must be 3 numbers: frames, height, width")
        if len(self.image_size) != 2:
            raise ValueError(f"image_size {list(self.image_size)} must be one number or 2: height, width")
        check_sizes(
            "encoder",
            width=self.width,
            depth=self.depth,
            heads=self.heads,
            mlp=self.mlp,
            patch_size=self.patch_size,
            num_frames=self.num_frames,
            image_size=self.image_size,
        )
        if self.attn_backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {self.attn_backend!r}; choose one of {BACKENDS}")
        for n, p, what in zip(
            (self.num_frames, *self.image_size), self.patch_size, ("num_frames", "height", "width"), strict=True
        ):
            if n % p:
                raise ValueError(f"{what} {n} is not divisible by the patch size {p} ({self.patch_size})")

    @classmethod
    def from_size(cls, size: str, **overrides: Any) -> ViTConfig:
        """Config of a registry size ('b', 'e', '22b', official 'B', ...), with any field overridden."""
        spec = resolve_size(size)
        base = dict(width=spec.width, depth=spec.depth, heads=spec.heads, mlp=spec.mlp)
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', h, w) for the configured clip shape."""
        return tubelet_grid((self.num_frames, *self.image_size), self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        return config_dict(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ViTConfig:
        return cls(**config)


def tubelet_grid(clip_shape: tuple[int, int, int], patch_size: tuple[int, int, int]) -> tuple[int, int, int]:
    """Token grid (T', h, w) of a (T, H, W) clip cut into `patch_size` tubelets."""
    return tuple(n // p for n, p in zip(clip_shape, patch_size, strict=True))


def patchify(video: torch.Tensor, patch_size: tuple[int, int, int]) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, pt*ph*pw*C) tubelets, tokens in (t, h, w) raster order, values (pt, ph, pw, c)."""
    pt, ph, pw = patch_size
    return rearrange(video, "b c (t pt) (h ph) (w pw) -> b (t h w) (pt ph pw c)", pt=pt, ph=ph, pw=pw)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (with bias) and an output projection."""

    def __init__(self, dim: int, heads: int, backend: str = "auto") -> None:
        super().__init__()
        self.heads = heads
        self.backend = backend
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b n h d", three=3, h=self.heads)
        out = dot_product_attention(q, k, v, self.backend)
        return self.proj(rearrange(out, "b n h d -> b n (h d)"))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp: int, backend: str = "auto") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = Attention(dim, heads, backend)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp, act_layer=TanhGELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_transformer_weights(module: nn.Module) -> None:
    """MAE's init: xavier-uniform linears and patch embedding (as a linear map), zero biases, unit norms.

    In-place ops only, so it also runs on sharded (DTensor) parameters after `to_empty`.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
        elif isinstance(m, nn.Conv3d):  # as a linear map from the flattened tubelet to the width
            fan_in, fan_out = math.prod(m.weight.shape[1:]), m.weight.shape[0]
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            nn.init.uniform_(m.weight, -bound, bound)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            continue
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class BlockStack(nn.Module):
    """A list of blocks with optional per-block activation checkpointing."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.activation_checkpointing = False

    def run(self, x: torch.Tensor, blocks: Sequence[nn.Module]) -> torch.Tensor:
        for blk in blocks:
            if self.activation_checkpointing and torch.is_grad_enabled():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x


class SpaceTimeViT(BlockStack):
    """The 4DS video encoder. `forward` returns the last block's tokens; `features` the official list."""

    def __init__(self, config: ViTConfig) -> None:
        c = config
        super().__init__([Block(c.width, c.heads, c.mlp, c.attn_backend) for _ in range(c.depth)])
        self.config = c
        self.patch_embed = nn.Conv3d(c.in_chans, c.width, kernel_size=c.patch_size, stride=c.patch_size)
        self.pos_embed = nn.Parameter(torch.empty(*c.grid, c.width))
        self.init_weights()

    @property
    def width(self) -> int:
        return self.config.width

    def init_weights(self) -> None:
        """(Re)initialise every parameter; safe to call after `to_empty` on meta or sharded models."""
        init_transformer_weights(self)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}

    def set_activation_checkpointing(self, enable: bool = True) -> None:
        self.activation_checkpointing = enable

    def position_embedding(self, grid: tuple[int, int, int]) -> torch.Tensor:
        """The (T', h, w, D) embedding for a token grid; trilinear resize when it differs from training."""
        if tuple(grid) == tuple(self.pos_embed.shape[:3]):
            return self.pos_embed
        resized = F.interpolate(
            self.pos_embed.permute(3, 0, 1, 2)[None], size=tuple(grid), mode="trilinear", align_corners=False
        )
        return resized[0].permute(1, 2, 3, 0)

    def tokenize(self, video: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """(B, C, T, H, W) video in [0, 1] (or uint8 in [0, 255]) -> (B, T'*h*w, D) tokens with position embedding,
        and the grid."""
        if video.ndim != 5 or video.shape[1] != self.config.in_chans:
            raise ValueError(
                f"expected a (batch, {self.config.in_chans}, frames, height, width) video, got {tuple(video.shape)}"
            )
        if video.dtype == torch.uint8:
            video = video.to(self.patch_embed.weight.dtype) / 255
        x = self.patch_embed(video)  # B D T' h w
        grid = tuple(x.shape[2:])
        x = rearrange(x, "b d t h w -> b t h w d") + self.position_embedding(grid)
        return rearrange(x, "b t h w d -> b (t h w) d"), grid

    def forward(self, video: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens after all blocks, (B, N, D); with `ids_keep` (B, K) only those tokens are encoded."""
        if ids_keep is not None:
            grid = tubelet_grid(video.shape[2:], self.config.patch_size)
            return self.encode_tubelets(patchify(video, self.config.patch_size), ids_keep, grid)
        x, _ = self.tokenize(video)
        return self.run(x, self.blocks)

    def encode_tubelets(
        self, tubelets: torch.Tensor, ids_keep: torch.Tensor, grid: tuple[int, int, int]
    ) -> torch.Tensor:
        """Only the tubelets at `ids_keep` (B, K) of `patchify`'s (B, N, P) on token `grid` through the embedding
        and blocks.

        The same map as `tokenize` (the tubelet Conv3d as a matrix), but the hidden tubelets cost nothing,
        forward or backward.
        """
        visible = torch.gather(tubelets, 1, ids_keep[..., None].expand(-1, -1, tubelets.shape[-1]))
        weight = self.patch_embed.weight.permute(0, 2, 3, 4, 1).flatten(1)  # (D, pt*ph*pw*C), patchify's order
        position = F.embedding(ids_keep, self.position_embedding(grid).flatten(0, 2))  # (B, K, D), deterministic grad
        tokens = F.linear(visible.to(weight.dtype), weight, self.patch_embed.bias)  # FSDP2 may gather weights in bf16
        return self.run(tokens + position, self.blocks)

    def features(self, video: torch.Tensor) -> list[torch.Tensor]:
        """The official feature list: [tokens, input of block 0, ..., input of block L-1] (L + 1 entries).

        The last block's output is never part of it, so the last block is not computed here.
        """
        x, _ = self.tokenize(video)
        feats = [x, x]
        for blk in self.blocks[:-1]:
            x = self.run(x, [blk])
            feats.append(x)
        return feats


def count_parameters(module: nn.Module) -> int:
    """Number of parameter scalars (works on the meta device)."""
    return sum(p.numel() for p in module.parameters())
