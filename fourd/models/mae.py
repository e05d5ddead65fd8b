"""Video masked autoencoder around the 4DS encoder: masking, a narrow decoder, masked-pixel loss."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from fourd.models.vit import (
    LN_EPS,
    Block,
    BlockStack,
    SpaceTimeViT,
    ViTConfig,
    check_sizes,
    init_transformer_weights,
    patchify,
)

MASKINGS = ("random", "tube")


class Masking(NamedTuple):
    """Which tokens the encoder sees. ids_keep (B, K); ids_restore (B, N) undoes the shuffle; mask (B, N) 1=hidden."""

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def visible_count(num_tokens: int, ratio: float) -> int:
    """Tokens kept at a mask ratio (at least one)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"mask ratio must be in [0, 1), got {ratio}")
    return max(1, int(num_tokens * (1.0 - ratio)))


def _masking_from_hidden(hidden: torch.Tensor, keep: int) -> Masking:
    """Build the index tensors from a 0/1 hidden-token map with `keep` visible tokens in every row.

    `keep` comes from the config, not from the map, so no device-to-host sync happens per step.
    """
    ids_shuffle = torch.argsort(hidden, dim=1, stable=True)  # visible tokens first, in raster order
    return Masking(ids_shuffle[:, :keep], torch.argsort(ids_shuffle, dim=1), hidden.float())


def random_masking(
    batch: int,
    grid: tuple[int, int, int],
    ratio: float,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Masking:
    """MAE random masking: rank uniform noise per token, keep the lowest ranks."""
    n = grid[0] * grid[1] * grid[2]
    noise = torch.rand(batch, n, device=device, generator=generator)
    ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    keep = visible_count(n, ratio)
    return _masking_from_hidden((ranks >= keep).to(torch.uint8), keep)


def tube_masking(
    batch: int,
    grid: tuple[int, int, int],
    ratio: float,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> Masking:
    """VideoMAE tube masking: one random spatial mask shared by every time step."""
    t, h, w = grid
    spatial = random_masking(batch, (1, h, w), ratio, device, generator).mask
    return _masking_from_hidden(spatial.repeat(1, t).to(torch.uint8), visible_count(h * w, ratio) * t)


def unpatchify(patches: torch.Tensor, patch_size: tuple[int, int, int], grid: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of `patchify`."""
    (pt, ph, pw), (t, h, w) = patch_size, grid
    return rearrange(patches, "b (t h w) (pt ph pw c) -> b c (t pt) (h ph) (w pw)", t=t, h=h, w=w, pt=pt, ph=ph, pw=pw)


def sincos_position_embedding(grid: tuple[int, int, int], dim: int) -> torch.Tensor:
    """Fixed 3-D sin-cos embedding (N, dim): a third of the even channels each for t, h and w, zeros after."""
    per_axis = dim // 6 * 2
    freqs = 1.0 / 10000 ** (torch.arange(per_axis // 2, dtype=torch.float64) / (per_axis // 2))
    coords = torch.stack(torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in grid), indexing="ij"), -1)
    angles = coords.reshape(-1, 3, 1) * freqs  # (N, 3, per_axis / 2)
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1).reshape(len(coords.reshape(-1, 3)), -1)
    return torch.nn.functional.pad(emb, (0, dim - emb.shape[1])).float()


@dataclass
class DecoderConfig:
    width: int = 512
    depth: int = 4
    heads: int = 8
    mlp: int = 2048

    def __post_init__(self) -> None:
        check_sizes("decoder", width=self.width, depth=self.depth, heads=self.heads, mlp=self.mlp)


@dataclass
class MAEConfig:
    encoder: ViTConfig = field(default_factory=ViTConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    mask_ratio: float = 0.95
    masking: str = "random"
    norm_pix_loss: bool = False

    def __post_init__(self) -> None:
        if self.masking not in MASKINGS:
            raise ValueError(f"unknown masking {self.masking!r}; choose one of {MASKINGS}")
        if not isinstance(self.mask_ratio, (int, float)) or isinstance(self.mask_ratio, bool):
            raise ValueError(f"mask_ratio={self.mask_ratio!r} must be a number in [0, 1)")
        visible_count(1, self.mask_ratio)  # validates the ratio
        if not isinstance(self.norm_pix_loss, bool):
            raise ValueError(f"norm_pix_loss={self.norm_pix_loss!r} must be true or false")

    @property
    def visible_tokens(self) -> int:
        """Tokens the encoder sees per clip (random masking per clip, tube masking per frame)."""
        t, h, w = self.encoder.grid
        if self.masking == "tube":
            return t * visible_count(h * w, self.mask_ratio)
        return visible_count(t * h * w, self.mask_ratio)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "encoder": self.encoder.to_dict()}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> MAEConfig:
        return cls(
            **{
                **config,
                "encoder": ViTConfig.from_dict(config["encoder"]),
                "decoder": DecoderConfig(**config["decoder"]),
            }
        )


class MAEDecoder(BlockStack):
    """Narrow transformer over all tokens: visible encodings + mask tokens + a fixed sin-cos position embedding."""

    def __init__(
        self,
        config: DecoderConfig,
        encoder_width: int,
        grid: tuple[int, int, int],
        out_dim: int,
        attn_backend: str = "auto",
    ) -> None:
        c = config
        super().__init__([Block(c.width, c.heads, c.mlp, attn_backend) for _ in range(c.depth)])
        self.norm_in = nn.LayerNorm(encoder_width, eps=LN_EPS)  # the 4DS encoder has no final norm
        self.embed = nn.Linear(encoder_width, c.width)
        self.mask_token = nn.Parameter(torch.empty(1, 1, c.width))
        self.grid = grid
        self._pos_embed: dict[tuple, torch.Tensor] = {}  # per (device, dtype); not state, so never checkpointed
        self.norm = nn.LayerNorm(c.width, eps=LN_EPS)
        self.head = nn.Linear(c.width, out_dim)
        self.init_weights()

    def init_weights(self) -> None:
        init_transformer_weights(self)
        nn.init.normal_(self.mask_token, std=0.02)

    def position_embedding(self, like: torch.Tensor) -> torch.Tensor:
        key = (like.device, like.dtype)
        if key not in self._pos_embed:
            self._pos_embed[key] = sincos_position_embedding(self.grid, like.shape[-1]).to(like.device, like.dtype)
        return self._pos_embed[key]

    def forward(self, visible: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """(B, K, D_enc) visible encodings -> (B, N, out_dim) predictions for every token."""
        x = self.embed(self.norm_in(visible))
        b, k, d = x.shape
        n = ids_restore.shape[1]
        x = torch.cat([x, self.mask_token.expand(b, n - k, d)], dim=1)
        x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, d))
        x = x + self.position_embedding(x)
        return self.head(self.norm(self.run(x, self.blocks)))


class MAEOutput(NamedTuple):
    loss: torch.Tensor
    pred: torch.Tensor  # (B, N, patch values), in target space
    mask: torch.Tensor  # (B, N), 1 = hidden


class Reconstruction(NamedTuple):
    """Videos (B, C, T, H, W) in [0, 1] for pictures."""

    masked: torch.Tensor  # input with hidden tubelets greyed out
    predicted: torch.Tensor  # the decoder's prediction everywhere
    pasted: torch.Tensor  # visible input + predicted hidden tubelets


class MaskedAutoencoder(nn.Module):
    """MAE on video: the encoder sees only visible tubelets; MSE on hidden tubelets only."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SpaceTimeViT(config.encoder)
        e = config.encoder
        patch_dim = e.patch_size[0] * e.patch_size[1] * e.patch_size[2] * e.in_chans
        self.decoder = MAEDecoder(config.decoder, e.width, e.grid, patch_dim, e.attn_backend)

    @property
    def blocks(self) -> list[nn.Module]:
        """Every transformer block (encoder then decoder): the unit of sharding and checkpointing."""
        return [*self.encoder.blocks, *self.decoder.blocks]

    def init_weights(self) -> None:
        self.encoder.init_weights()
        self.decoder.init_weights()

    def no_weight_decay(self) -> set[str]:
        return {f"encoder.{n}" for n in self.encoder.no_weight_decay()} | {"decoder.mask_token"}

    def set_activation_checkpointing(self, enable: bool = True) -> None:
        self.encoder.activation_checkpointing = self.decoder.activation_checkpointing = enable

    def compile_for_training(self, per_block: bool = False) -> None:
        """torch.compile the training forward: the whole model, so that the gathers, embeddings and loss fuse
        around the blocks, or block by block, the units that FSDP2 shards (docs/performance.md)."""
        if per_block:
            for block in self.blocks:
                block.compile()
        else:
            self.compile()

    def mask(self, batch: int, device: torch.device, generator: torch.Generator | None = None) -> Masking:
        make = random_masking if self.config.masking == "random" else tube_masking
        return make(batch, self.config.encoder.grid, self.config.mask_ratio, device, generator)

    def targets(self, tubelets: torch.Tensor) -> torch.Tensor:
        """Per-tubelet pixel targets from `patchify`'s tubelets, normalised per patch when norm_pix_loss is set."""
        if not self.config.norm_pix_loss:
            return tubelets
        return (tubelets - tubelets.mean(-1, keepdim=True)) / (tubelets.var(-1, keepdim=True) + 1e-6).sqrt()

    def forward(
        self, video: torch.Tensor, generator: torch.Generator | None = None, masking: Masking | None = None
    ) -> MAEOutput:
        """Mask, encode the visible tubelets, decode all, and return the loss on the hidden ones."""
        masking = masking or self.mask(video.shape[0], video.device, generator)
        tubelets = patchify(video, self.config.encoder.patch_size)  # once, for the encoder and the targets
        latent = self.encoder.encode_tubelets(tubelets, masking.ids_keep, self.config.encoder.grid)
        pred = self.decoder(latent, masking.ids_restore).float()
        per_token = F.mse_loss(pred, self.targets(tubelets).float(), reduction="none").mean(-1)  # one fused kernel
        loss = (per_token * masking.mask).sum() / masking.mask.sum()
        return MAEOutput(loss, pred, masking.mask)

    @torch.no_grad()
    def reconstruct(self, video: torch.Tensor, generator: torch.Generator | None = None) -> Reconstruction:
        """The full predicted video (pixel space) for pictures, plus the masked input and the pasted result."""
        out = self.forward(video, generator)
        pred = out.pred
        if self.config.norm_pix_loss:  # undo the per-patch normalisation with the true patch statistics
            target = patchify(video, self.config.encoder.patch_size).float()
            pred = pred * (target.var(-1, keepdim=True) + 1e-6).sqrt() + target.mean(-1, keepdim=True)
        e = self.config.encoder
        hidden = unpatchify(out.mask[..., None].expand_as(pred), e.patch_size, e.grid).bool()
        predicted = unpatchify(pred, e.patch_size, e.grid).clamp(0, 1).to(video.dtype)
        masked = torch.where(hidden, torch.full_like(video, 0.5), video)
        return Reconstruction(masked, predicted, torch.where(hidden, predicted, video))
