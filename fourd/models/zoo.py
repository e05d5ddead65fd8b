"""The model zoo: every registry size as a pretraining MAE, counted on the meta device."""

from __future__ import annotations

from typing import Any

import torch

from fourd.models.flops import mae_flops
from fourd.models.mae import DecoderConfig, MAEConfig, MaskedAutoencoder
from fourd.models.sizes import VIT_SIZES
from fourd.models.vit import ViTConfig, count_parameters

COLUMNS = ("name", "width", "depth", "heads", "mlp", "encoder_params", "decoder_params", "gflops")


def parameter_counts(config: MAEConfig) -> dict[str, int]:
    """Parameter scalars of the MAE's encoder and decoder and their total, counted on the meta device."""
    with torch.device("meta"):
        model = MaskedAutoencoder(config)
    encoder, decoder = count_parameters(model.encoder), count_parameters(model.decoder)
    return {"encoder": encoder, "decoder": decoder, "total": count_parameters(model)}


def zoo_rows(
    mask_ratio: float = 0.95, num_frames: int = 16, image_size: int = 224, decoder: DecoderConfig | None = None
) -> list[dict[str, Any]]:
    """One row per size: shape, encoder/decoder parameter counts, forward GFLOPs per clip when masked."""
    rows = []
    for name in VIT_SIZES:
        encoder = ViTConfig.from_size(name, num_frames=num_frames, image_size=image_size)
        config = MAEConfig(encoder=encoder, decoder=decoder or DecoderConfig(), mask_ratio=mask_ratio)
        params = parameter_counts(config)
        rows.append(
            {
                "name": name,
                "width": encoder.width,
                "depth": encoder.depth,
                "heads": encoder.heads,
                "mlp": encoder.mlp,
                "encoder_params": params["encoder"],
                "decoder_params": params["decoder"],
                "gflops": round(mae_flops(config)["total"] / 1e9, 1),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table of zoo rows."""
    header = ["name", "width", "depth", "heads", "mlp", "encoder params", "decoder params", "GFLOPs/clip"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [
            r["name"],
            r["width"],
            r["depth"],
            r["heads"],
            r["mlp"],
            f"{r['encoder_params']:,}",
            f"{r['decoder_params']:,}",
            f"{r['gflops']:,}",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)
