"""Analytic forward FLOP counts (2 per multiply-add) of the encoder and the MAE."""

from __future__ import annotations

from math import prod

from fourd.models.mae import MAEConfig


def transformer_flops(tokens: int, width: int, depth: int, mlp: int) -> int:
    """Forward FLOPs of `depth` pre-norm blocks on `tokens` tokens (projections, attention, MLP)."""
    projections = 2 * tokens * width * (3 * width + width + 2 * mlp)
    attention = 2 * 2 * tokens * tokens * width  # q k^T and weights @ v
    return depth * (projections + attention)


def mae_flops(config: MAEConfig) -> dict[str, int]:
    """Forward FLOPs per clip of the MAE at its mask ratio: encoder (visible tubelets), decoder (all tokens)."""
    e, d = config.encoder, config.decoder
    tokens = prod(e.grid)
    visible = config.visible_tokens
    patch_dim = prod(e.patch_size) * e.in_chans
    encoder = 2 * visible * patch_dim * e.width + transformer_flops(visible, e.width, e.depth, e.mlp)  # hidden: none
    decoder = (
        2 * visible * e.width * d.width
        + transformer_flops(tokens, d.width, d.depth, d.mlp)
        + 2 * tokens * d.width * patch_dim
    )
    return {"encoder": encoder, "decoder": decoder, "total": encoder + decoder}


def encoder_flops(config: MAEConfig) -> int:
    """Forward FLOPs per clip of the encoder on the full, unmasked clip (inference / probing)."""
    e = config.encoder
    tokens = prod(e.grid)
    return 2 * tokens * prod(e.patch_size) * e.in_chans * e.width + transformer_flops(tokens, e.width, e.depth, e.mlp)
