"""A plain VideoMAE-style reference of `fourd.models.mae.MaskedAutoencoder`, the baseline of the benchmark.

What a researcher writes by hand: explicit softmax attention, nn.LayerNorm / nn.Linear / GELU, no fused
kernels. Same parameter names and shapes as the fourd MAE (it loads its state_dict strictly), same
masking, same loss and the same FLOPs.
"""

from __future__ import annotations

import torch
from torch import nn

from fourd.models.mae import MAEConfig, Masking, random_masking, sincos_position_embedding, tube_masking
from fourd.models.vit import LN_EPS


class ReferenceAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class ReferenceMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ReferenceBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = ReferenceAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = ReferenceMlp(dim, mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ReferenceEncoder(nn.Module):
    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        e = config.encoder
        self.patch_embed = nn.Conv3d(e.in_chans, e.width, kernel_size=e.patch_size, stride=e.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(*e.grid, e.width))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(ReferenceBlock(e.width, e.heads, e.mlp) for _ in range(e.depth))

    def forward(self, video: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(video).permute(0, 2, 3, 4, 1) + self.pos_embed  # B T' h w D
        x = x.flatten(1, 3)
        x = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, x.shape[-1]))
        for blk in self.blocks:
            x = blk(x)
        return x


class ReferenceDecoder(nn.Module):
    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        e, d = config.encoder, config.decoder
        self.norm_in = nn.LayerNorm(e.width, eps=LN_EPS)
        self.embed = nn.Linear(e.width, d.width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d.width))
        nn.init.normal_(self.mask_token, std=0.02)
        self.blocks = nn.ModuleList(ReferenceBlock(d.width, d.heads, d.mlp) for _ in range(d.depth))
        self.norm = nn.LayerNorm(d.width, eps=LN_EPS)
        self.head = nn.Linear(d.width, e.in_chans * e.patch_size[0] * e.patch_size[1] * e.patch_size[2])
        self.register_buffer("pos_embed", sincos_position_embedding(e.grid, d.width), persistent=False)

    def forward(self, visible: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.embed(self.norm_in(visible))
        b, k, d = x.shape
        x = torch.cat([x, self.mask_token.expand(b, ids_restore.shape[1] - k, d)], dim=1)
        x = torch.gather(x, 1, ids_restore[..., None].expand(-1, -1, d)) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x))


class ReferenceMAE(nn.Module):
    """The MAE written plainly; `forward` returns the loss on hidden tubelets."""

    def __init__(self, config: MAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = ReferenceEncoder(config)
        self.decoder = ReferenceDecoder(config)

    def mask(self, batch: int, device: torch.device) -> Masking:
        make = random_masking if self.config.masking == "random" else tube_masking
        return make(batch, self.config.encoder.grid, self.config.mask_ratio, device)

    def targets(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, N, pt*ph*pw*C) tubelet pixels, normalised per tubelet with norm_pix_loss."""
        (pt, ph, pw), (t, h, w) = self.config.encoder.patch_size, self.config.encoder.grid
        b, c = video.shape[:2]
        x = video.reshape(b, c, t, pt, h, ph, w, pw).permute(0, 2, 4, 6, 3, 5, 7, 1)
        x = x.reshape(b, t * h * w, pt * ph * pw * c)
        if self.config.norm_pix_loss:
            x = (x - x.mean(-1, keepdim=True)) / (x.var(-1, keepdim=True) + 1e-6).sqrt()
        return x

    def forward(self, video: torch.Tensor, masking: Masking | None = None) -> torch.Tensor:
        masking = masking or self.mask(video.shape[0], video.device)
        pred = self.decoder(self.encoder(video, masking.ids_keep), masking.ids_restore).float()
        per_token = (pred - self.targets(video).float()).pow(2).mean(-1)
        return (per_token * masking.mask).sum() / masking.mask.sum()
