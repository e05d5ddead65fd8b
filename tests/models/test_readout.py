"""The official attention readout: jax cubic resize, depth parity with JAX, and real checkpoint key coverage."""

from __future__ import annotations

import itertools
import json
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from fourd.models.depth_model import DepthConfig, DepthModel, depth_from_patches
from fourd.models.readout import AttentionReadout, ReadoutConfig, encoder_to_readout, readout_layer_index
from fourd.models.resize import cubic_resize_matrix, resize_time
from fourd.models.vit import SpaceTimeViT, ViTConfig, count_parameters
from fourd.official import (
    READOUT_PREFIX,
    encoder_state_from_official,
    find_encoder_prefix,
    infer_encoder_config,
    official_model_config,
    official_readout_keys,
    official_state,
)
from tests.helpers import load_fixture_pair


def read_json(fixtures_dir: Path, name: str) -> dict:
    return json.loads((fixtures_dir / name).read_text())


@pytest.fixture(scope="module")
def tiny_config(fixtures_dir: Path) -> dict:
    return read_json(fixtures_dir, "r4d_tiny/config.json")


# --- jax.image.resize(CUBIC) -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["2->4", "8->16", "3->6", "4->16"])
def test_cubic_resize_matrix_matches_jax(tiny_config, case):
    probe = tiny_config["resize_probe"]["results"][case]
    n_in, n_out = map(int, case.split("->"))
    weights = cubic_resize_matrix(n_in, n_out)
    err = (weights - torch.tensor(probe["weight_matrix_out_by_in"])).abs().max().item()
    assert err <= 1e-6, f"{case}: weight matrix max abs error {err:.1e}"
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(n_out))
    ramp = torch.tensor(probe["ramp_in"])[None, :, None]  # resized along dim 1
    err = (resize_time(ramp, n_out)[0, :, 0] - torch.tensor(probe["jax_cubic"])).abs().max().item()
    assert err <= 1e-6, f"{case}: resized ramp max abs error {err:.1e}"


def test_cubic_resize_identity_for_equal_sizes():
    assert torch.equal(cubic_resize_matrix(5, 5), torch.eye(5))
    x = torch.randn(2, 3, 4)
    assert resize_time(x, 3, dim=1) is x


def test_cubic_resize_downsampling_widens_the_kernel():
    # 6 -> 3: samples at s = 0.5, 2.5, 4.5 with the kernel stretched by 2, so |s - j| / 2 = 0.25, 0.75, 1.25, 1.75
    k25, k75, k125, k175 = 0.8671875, 0.2265625, -0.0703125, -0.0234375  # Keys(a=-0.5) at those distances
    edge, middle = np.array([k25, k25, k75, k125, k175, 0.0]), np.array([k125, k75, k25, k25, k75, k125])
    rows = [edge / edge.sum(), middle / middle.sum(), edge[::-1] / edge.sum()]  # rows renormalised to sum 1
    torch.testing.assert_close(cubic_resize_matrix(6, 3), torch.tensor(np.stack(rows), dtype=torch.float32))
    x = torch.randn(2, 6, 4)
    torch.testing.assert_close(resize_time(x.transpose(1, 2), 3, dim=2), resize_time(x, 3).transpose(1, 2))


# --- small units ---------------------------------------------------------------------------------------------------


def test_readout_layer_index():
    assert readout_layer_index(13, 0.95) == 11
    assert readout_layer_index(5, 0.95) == 3
    with pytest.raises(ValueError):
        readout_layer_index(1, 0.5)


def test_depth_from_patches_ordering():
    (t, h, w), (p0, p1, p2) = (4, 4, 6), (2, 2, 3)
    cells = list(itertools.product(range(t // p0), range(h // p1), range(w // p2)))  # queries: patches, raster
    offsets = list(itertools.product(range(p0), range(p1), range(p2)))  # values: pixels within a patch, raster
    out = torch.tensor(
        [[[(n0 * p0 + i) * 10000 + (n1 * p1 + j) * 100 + n2 * p2 + k for i, j, k in offsets] for n0, n1, n2 in cells]],
        dtype=torch.float64,
    )
    depth = depth_from_patches(out, (t, h, w), (p0, p1, p2))
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    assert torch.equal(depth[0, ..., 0], (tt * 10000 + hh * 100 + ww).double())


def small_readout_config(**overrides) -> ReadoutConfig:
    base = dict(width=16, heads=2, num_queries=5, num_classes=3, mlp=32, num_frames=2, encoder_width=8)
    return ReadoutConfig(**{**base, **overrides})


def test_attention_readout_shapes_init_and_backward():
    readout = AttentionReadout(small_readout_config(attn_backend="reference"))
    readout.init_weights()
    inputs = torch.randn(2, 2, 6, 8)
    out = readout(inputs)
    assert out.shape == (2, 5, 3)
    out.square().mean().backward()
    for name, p in readout.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert readout(inputs, query_tokens=torch.randn(2, 7, 16)).shape == (2, 7, 3)
    with pytest.raises(ValueError, match="frames"):
        readout(torch.randn(2, 3, 6, 8))


def test_depth_config_checks_the_tiling():
    encoder = ViTConfig(width=8, depth=1, heads=2, mlp=16, patch_size=(2, 8, 8), num_frames=4, image_size=32)
    readout = small_readout_config(num_queries=128, num_classes=32, num_frames=4, output_patch=(2, 4, 4))
    assert DepthConfig(encoder, readout).output_shape == (4, 32, 32)
    with pytest.raises(ValueError, match="tile"):
        DepthConfig(encoder, small_readout_config(num_frames=4, output_patch=(2, 4, 4)))


# --- official checkpoints ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strong,tol", [(False, 1e-5), (True, 5e-5)])
@pytest.mark.parametrize("backend", ["reference", "sdpa"])
def test_depth_model_matches_jax(fixtures_dir, tiny_config, strong, tol, backend):
    params, io = load_fixture_pair(fixtures_dir, strong)
    hyper = tiny_config["hyperparameters"]
    config = official_model_config(params, output_patch=tuple(hyper["decoding_patch_size"]))
    config.encoder.attn_backend = config.readout.attn_backend = backend
    assert (config.readout.width, config.readout.heads, config.readout.num_queries) == (
        hyper["readout_num_params"],
        hyper["readout_num_heads"],
        hyper["readout_num_queries"],
    )
    model = DepthModel(config).eval()
    state, used = official_state(params, config)
    model.load_state_dict(state, strict=True)  # every parameter filled, nothing extra
    assert used == set(params)
    assert set(official_readout_keys()) == {k for k in params if k.startswith(READOUT_PREFIX)}

    video = torch.from_numpy(io["video"]).permute(0, 4, 1, 2, 3)
    with torch.no_grad():
        tokens = encoder_to_readout(
            model.features(video), config.encoder.grid, config.readout.readout_depth, config.readout.num_frames
        )
        depth = model(video)
    errors = {
        "readout_input": (tokens - torch.from_numpy(io["readout_input"])).abs().max().item(),
        "output": (depth - torch.from_numpy(io["output"][..., 0])).abs().max().item(),
    }
    print(f"strong={strong} backend={backend} max abs errors: {errors}")
    assert max(errors.values()) <= tol, f"max abs errors {errors} > {tol:.0e}"


def stand_ins(keys: list) -> dict[str, np.ndarray]:
    """Zero-stride views of one float for every [key, shape, dtype]: full shapes, nothing allocated."""
    zero = np.zeros(1, np.float32)
    return {key: np.broadcast_to(zero, tuple(shape)) for key, shape, *_ in keys}


def shape_of(array: np.ndarray) -> tuple[int, ...]:
    return tuple(array.shape)


def meta_shapes(build: Callable[[], torch.nn.Module]) -> tuple[dict[str, tuple[int, ...]], int]:
    with torch.device("meta"):
        model = build()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}, count_parameters(model)


def test_a_depth_model_refuses_a_clip_its_queries_do_not_tile(fixtures_dir, tiny_config):
    params, _ = load_fixture_pair(fixtures_dir, False)
    config = official_model_config(params, output_patch=tuple(tiny_config["hyperparameters"]["decoding_patch_size"]))
    model = DepthModel(config).eval()
    t, h, w = config.encoder.num_frames, *config.encoder.image_size
    assert model(torch.rand(1, 3, t, h, w)).shape == (1, t, h, w)
    for shape in [(1, 3, 2 * t, h, w), (1, 3, t, 2 * h, w)]:
        with pytest.raises(ValueError, match=re.escape(f"takes (batch, 3, {t}, {h}, {w}) clips, got {shape}")):
            model(torch.rand(*shape))


def test_vit_b_depth_checkpoint_coverage(fixtures_dir):
    listing = read_json(fixtures_dir, "r4d_keys_B.json")
    params = stand_ins(listing["keys"])
    config = official_model_config(params, output_patch=(2, 8, 8))
    assert config.encoder == ViTConfig() and config.readout == ReadoutConfig()  # the release defaults
    shapes, used = official_state(params, config, convert=shape_of)
    expected, num_params = meta_shapes(lambda: DepthModel(config))
    assert shapes == expected
    assert used == set(params)
    assert num_params == listing["num_param_scalars"]


@pytest.mark.parametrize(
    "keys,count", [("keys", "num_param_scalars"), ("encoder_B_keys", "encoder_B_num_param_scalars")]
)
def test_encoder_checkpoint_coverage(fixtures_dir, keys, count):
    listing = read_json(fixtures_dir, "r4d_keys_e.json")
    params = stand_ins(listing[keys])
    prefix = find_encoder_prefix(set(params))
    assert prefix == "params/"
    config = infer_encoder_config(params, prefix)
    tracemalloc.start()
    try:
        shapes, used = encoder_state_from_official(params, prefix, config.depth, convert=shape_of)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    expected, num_params = meta_shapes(lambda: SpaceTimeViT(config))
    assert shapes == expected
    assert used == set(params)
    assert num_params == listing[count]
    assert peak < 64 * 2**20, f"mapping the layout allocated {peak / 2**20:.0f} MiB"  # one fused qkv at most


@pytest.mark.parametrize("readout_depth", [0.0, 7.0, -0.5])
def test_readout_depth_is_relative(readout_depth):
    with pytest.raises(ValueError, match="not a relative depth"):
        ReadoutConfig(readout_depth=readout_depth)
