"""The peer users would pick instead of fourd for MAE pretraining: Hugging Face transformers'
`VideoMAEForPreTraining` with SDPA attention, at the same shapes, mask ratio and AdamW (the `compare` extra)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from fourd.models.mae import MAEConfig


def build_hf_videomae(config: MAEConfig, device: torch.device) -> nn.Module:
    """VideoMAEForPreTraining with fourd's encoder and decoder shapes, randomly initialised on `device`."""
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    e, d = config.encoder, config.decoder
    if e.image_size[0] != e.image_size[1] or e.patch_size[1] != e.patch_size[2]:
        raise ValueError("transformers' VideoMAE takes square frames and patches only")
    hf = VideoMAEConfig(
        image_size=e.image_size[0],
        patch_size=e.patch_size[1],
        num_channels=e.in_chans,
        num_frames=e.num_frames,
        tubelet_size=e.patch_size[0],
        hidden_size=e.width,
        num_hidden_layers=e.depth,
        num_attention_heads=e.heads,
        intermediate_size=e.mlp,
        decoder_hidden_size=d.width,
        decoder_num_hidden_layers=d.depth,
        decoder_num_attention_heads=d.heads,
        decoder_intermediate_size=d.mlp,
        norm_pix_loss=config.norm_pix_loss,
        use_mean_pooling=False,
        attn_implementation="sdpa",
    )
    with torch.device(device):
        return VideoMAEForPreTraining(hf).train()


def hf_loss(model: nn.Module, config: MAEConfig, video: torch.Tensor) -> Callable[[], torch.Tensor]:
    """The peer's loss on `video` (B, C, T, H, W) with a fresh random mask per step, as many tokens visible as in
    fourd's encoder."""
    pixels = video.transpose(1, 2).contiguous()  # transformers takes (B, T, C, H, W)
    tokens = math.prod(config.encoder.grid)
    visible = config.visible_tokens  # as many as fourd's encoder sees

    def loss() -> torch.Tensor:
        order = torch.rand(len(video), tokens, device=video.device).argsort(dim=1)
        return model(pixel_values=pixels, bool_masked_pos=order >= visible).loss

    return loss
