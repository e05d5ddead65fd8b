import json

import pytest
import torch
from safetensors import safe_open

import fourd
from fourd.models.depth_model import DepthConfig, DepthModel
from fourd.models.mae import DecoderConfig, MAEConfig, MaskedAutoencoder
from fourd.models.readout import ReadoutConfig
from fourd.models.vit import SpaceTimeViT, ViTConfig
from fourd.weights import (
    FORMAT,
    CheckpointError,
    load,
    load_encoder,
    load_state_strict,
    read_weights,
    save_weights,
    strip_wrapper_prefixes,
)
from tests.helpers.encoders import save_encoder

CONFIG = ViTConfig(width=32, depth=2, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)


def test_encoder_round_trip(tmp_path):
    encoder = SpaceTimeViT(CONFIG)
    path = save_encoder(tmp_path / "enc.safetensors", encoder)
    loaded = load_encoder(path)
    assert not loaded.training and loaded.config == CONFIG
    video = torch.rand(1, 3, 4, 32, 32)
    torch.testing.assert_close(loaded(video), encoder.eval()(video))
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["config"])["width"] == 32 and f.metadata()["kind"] == "encoder"


@pytest.mark.parametrize("kind", ["encoder", "depth", "mae"])
def test_one_load_reads_every_kind_fourd_writes(tmp_path, kind):
    models = {
        "encoder": lambda: SpaceTimeViT(CONFIG),
        "depth": lambda: DepthModel(
            DepthConfig(
                CONFIG,
                ReadoutConfig(
                    width=32,
                    heads=2,
                    num_queries=2 * 4 * 4,
                    num_classes=2 * 8 * 8,
                    mlp=64,
                    num_frames=4,
                    encoder_width=32,
                ),
            )
        ),
        "mae": lambda: MaskedAutoencoder(MAEConfig(encoder=CONFIG, decoder=DecoderConfig(16, 1, 2, 32))),
    }
    model = models[kind]()
    path = save_weights(tmp_path / f"{kind}.safetensors", model.state_dict(), kind, model.config.to_dict())
    loaded = load(path)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert load_encoder(path).config == CONFIG  # the encoder of any of them


def test_configs_round_trip_through_dicts():
    mae = MAEConfig(encoder=CONFIG, decoder=DecoderConfig(16, 1, 2, 32), mask_ratio=0.5, masking="tube")
    assert MAEConfig.from_dict(json.loads(json.dumps(mae.to_dict()))) == mae
    assert ViTConfig.from_dict(json.loads(json.dumps(CONFIG.to_dict()))) == CONFIG


def test_wrapper_prefixes_are_stripped(tmp_path):
    encoder = SpaceTimeViT(CONFIG)
    wrapped = {f"module._orig_mod.{k}": v for k, v in encoder.state_dict().items()}
    save_weights(tmp_path / "w.safetensors", wrapped, "encoder", CONFIG.to_dict())
    tensors, _ = read_weights(tmp_path / "w.safetensors")
    assert set(tensors) == set(encoder.state_dict())
    assert strip_wrapper_prefixes("_forward_module.blocks.0.norm1.weight") == "blocks.0.norm1.weight"
    load_encoder(tmp_path / "w.safetensors")


def test_mismatching_config_names_the_offending_keys(tmp_path):
    encoder = SpaceTimeViT(CONFIG)
    state = encoder.state_dict()
    state.pop("blocks.1.mlp.fc2.bias")
    state["blocks.0.extra"] = torch.zeros(1)
    state["pos_embed"] = torch.zeros(3, 4, 4, 32)
    with pytest.raises(CheckpointError) as err:
        load_state_strict(SpaceTimeViT(CONFIG), state, "x.safetensors")
    message = str(err.value)
    for key in ("blocks.1.mlp.fc2.bias", "blocks.0.extra", "pos_embed: file (3, 4, 4, 32) vs model (2, 4, 4, 32)"):
        assert key in message
    wrong_depth = ViTConfig(**{**CONFIG.to_dict(), "depth": 3})
    save_weights(tmp_path / "bad.safetensors", encoder.state_dict(), "encoder", wrong_depth.to_dict())
    with pytest.raises(CheckpointError, match="missing .*blocks.2"):
        load_encoder(tmp_path / "bad.safetensors")


def test_corrupt_and_foreign_files_fail_clearly(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        read_weights(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError):
        read_weights(tmp_path / "missing.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="no fourd metadata"):
        load_encoder(tmp_path / "foreign.safetensors")
    damaged = tmp_path / "damaged.safetensors"
    save_file({"w": torch.zeros(2)}, str(damaged), metadata={"format": FORMAT, "config": "{width: 32"})
    with pytest.raises(CheckpointError, match=f"^{damaged}: its fourd metadata 'config' is not valid JSON"):
        load_encoder(damaged)


def test_checkpoints_of_other_formats_name_the_command_that_converts_them(tmp_path):
    import numpy as np
    import torch.distributed.checkpoint as dcp

    np.savez(tmp_path / "official.npz", w=np.zeros(2))
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "step_2.ckpt")
    with pytest.warns(UserWarning, match="single process"):
        dcp.save({"w": torch.zeros(2)}, checkpoint_id=tmp_path / "step_4.ckpt")
    for name, command in [
        ("official.npz", "python -m fourd.convert"),
        ("step_2.ckpt", "python -m fourd.export"),
        ("step_4.ckpt", "python -m fourd.export"),
    ]:
        with pytest.raises(CheckpointError, match=f"is not a safetensors file but .*`{command} {tmp_path / name}"):
            fourd.load(tmp_path / name)


def test_non_finite_weights_are_refused_by_name(tmp_path):
    encoder = SpaceTimeViT(CONFIG)
    state = encoder.state_dict()
    state["pos_embed"][0, 0, 0, 0] = float("inf")
    path = save_encoder(tmp_path / "inf.safetensors", encoder, state)
    with pytest.raises(CheckpointError, match=r"holds nan or inf in 1 tensors: pos_embed$"):
        load_encoder(path)
