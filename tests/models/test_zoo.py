import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from fourd.models.__main__ import main
from fourd.models.flops import mae_flops
from fourd.models.mae import DecoderConfig, MAEConfig, MaskedAutoencoder, random_masking
from fourd.models.vit import ViTConfig


def test_json_zoo_reports_released_counts(capsys):
    main(["--json"])
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["b"]["encoder_params"] == 87_439_104
    assert rows["e"]["encoder_params"] == 3_809_464_064
    assert set(rows) == {"mu", "ti", "s", "m", "b", "l", "h", "g", "bigg", "e", "22b"}
    assert set(rows["b"]) == {"name", "width", "depth", "heads", "mlp", "encoder_params", "decoder_params", "gflops"}
    assert rows["22b"]["encoder_params"] > 21e9


def test_table_prints(capsys):
    main([])
    out = capsys.readouterr().out
    assert "| b | 768 | 12 | 12 | 3072 | 87,439,104 |" in out


def test_analytic_flops_equal_measured_flops():
    config = MAEConfig(
        encoder=ViTConfig(
            width=64,
            depth=2,
            heads=4,
            mlp=96,
            patch_size=(2, 8, 8),
            num_frames=4,
            image_size=32,
            attn_backend="reference",
        ),
        decoder=DecoderConfig(
            32,
            2,
            2,
            48,
        ),
        mask_ratio=0.75,
    )
    model = MaskedAutoencoder(config)
    video = torch.rand(1, 3, 4, 32, 32)
    masking = random_masking(1, config.encoder.grid, 0.75)
    with FlopCounterMode(display=False) as counter:
        model(video, masking=masking)
    assert counter.get_total_flops() == mae_flops(config)["total"]
