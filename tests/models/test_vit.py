import json

import pytest
import torch

from fourd.models.sizes import OFFICIAL_NAMES, VIT_SIZES, resolve_size
from fourd.models.vit import SpaceTimeViT, ViTConfig, count_parameters, patchify


def tiny(**kw) -> SpaceTimeViT:
    base = dict(width=32, depth=3, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=32)
    return SpaceTimeViT(ViTConfig(**{**base, **kw}))


def test_registry_matches_official_sizes(fixtures_dir):
    official = json.loads((fixtures_dir / "vit_sizes.json").read_text())["sizes"]
    assert set(OFFICIAL_NAMES) == set(official)
    for name, spec in official.items():
        size = resolve_size(name)
        assert (size.width, size.depth, size.mlp, size.heads) == (
            spec["hidden_size"],
            spec["num_layers"],
            spec["mlp_size"],
            spec["num_heads"],
        )
    assert resolve_size("g") != resolve_size("G")  # case matters for official names
    assert resolve_size("ViT-G/16") == VIT_SIZES["bigg"]
    assert resolve_size("22b") == VIT_SIZES["22b"] and VIT_SIZES["22b"].width == 6144
    assert len({n.lower() for n in VIT_SIZES}) == len(VIT_SIZES)  # config file names never collide
    with pytest.raises(ValueError, match="unknown ViT size"):
        resolve_size("xl")


@pytest.mark.parametrize("size,expected", [("b", 87_439_104), ("e", 3_809_464_064)])
def test_parameter_counts_match_released_checkpoints(size, expected, fixtures_dir):
    with torch.device("meta"):
        encoder = SpaceTimeViT(ViTConfig.from_size(size))
    assert count_parameters(encoder) == expected
    keys = json.loads((fixtures_dir / "r4d_keys_e.json").read_text())
    if size == "e":
        assert keys["num_param_scalars"] == expected


def test_shapes_and_feature_list():
    model = tiny().eval()
    video = torch.rand(2, 3, 4, 32, 32)
    tokens = model(video)
    assert tokens.shape == (2, 2 * 4 * 4, 32)
    feats = model.features(video)
    assert len(feats) == 3 + 1
    torch.testing.assert_close(feats[0], feats[1])  # official quirk: entries 0 and 1 are the same
    # the last entry is the input of the last block, not the encoder output
    torch.testing.assert_close(model.blocks[-1](feats[-1]), tokens)


def test_uint8_video_reads_as_its_float_in_0_1_and_a_wrong_layout_is_named():
    model = tiny().eval()
    video = torch.randint(0, 256, (1, 3, 4, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model.features(video)[-1], model.features(video.float() / 255)[-1])
    with pytest.raises(
        ValueError, match=r"expected a \(batch, 3, frames, height, width\) video, got \(1, 4, 32, 32, 3\)"
    ):
        model(video.permute(0, 2, 3, 4, 1))


@pytest.mark.parametrize("frames,size", [(4, 32), (8, 48)])  # the native grid, and a resized position embedding
def test_visible_token_subset_equals_encoding_only_those_tokens(frames, size):
    model = tiny(depth=1).eval()
    video = torch.rand(2, 3, frames, size, size)
    ids = torch.tensor([[0, 5, 31], [7, 2, 30]])
    x, _ = model.tokenize(video)  # the Conv3d over every tubelet
    expected = model.blocks[0](torch.stack([x[0, ids[0]], x[1, ids[1]]]))
    torch.testing.assert_close(model(video, ids), expected)


def test_position_embedding_identical_on_native_grid_and_interpolated_otherwise():
    model = tiny()
    assert model.position_embedding((2, 4, 4)) is model.pos_embed
    bigger = model.position_embedding((4, 6, 6))
    assert bigger.shape == (4, 6, 6, 32)
    assert model(torch.rand(1, 3, 8, 48, 48)).shape == (1, 4 * 6 * 6, 32)


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="divisible by heads"):
        ViTConfig(width=30, heads=4)
    with pytest.raises(ValueError, match="num_frames 5"):
        ViTConfig(num_frames=5)


def test_grad_checkpointing_gives_same_gradients():
    model = tiny()
    video = torch.rand(1, 3, 4, 32, 32)
    model(video).square().mean().backward()
    plain = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_activation_checkpointing(True)
    model(video).square().mean().backward()
    for a, p in zip(plain, model.parameters(), strict=True):
        torch.testing.assert_close(a, p.grad)


@pytest.mark.parametrize("field", ["depth", "width", "heads", "mlp"])
@pytest.mark.parametrize("value", [0, -1])
def test_encoder_sizes_must_be_positive(field, value):
    with pytest.raises(ValueError, match=f"positive whole numbers, got {field}={value}"):
        ViTConfig(**{field: value})


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"patch_size": (2, 8)}, r"patch_size \[2, 8\] must be 3 numbers"),
        ({"patch_size": (2, 0, 8)}, r"patch_size=\(2, 0, 8\)"),
        ({"image_size": (64, 64, 3)}, r"image_size \[64, 64, 3\] must be one number or 2"),
        ({"num_frames": 0}, "num_frames=0"),
        ({"depth": True}, "depth=True"),
        ({"attn_backend": "flash"}, "unknown attention backend 'flash'"),
    ],
)
def test_shapes_that_cannot_work_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        ViTConfig(**fields)


def test_visible_token_gradients_are_bit_identical_from_run_to_run():
    # Batches keep the same token in several clips. An accumulating index_put adds their position gradients in a
    # thread-dependent order; with it, a resumed run once drifted from an uninterrupted one in the last bits.
    model = tiny(width=128, heads=2, mlp=128, depth=1, num_frames=8, image_size=64)  # 4 x 8 x 8 = 256 tokens
    generator = torch.Generator().manual_seed(0)
    tubelets = patchify(torch.rand(4, 3, 8, 64, 64, generator=generator), model.config.patch_size)
    ids = torch.stack([torch.randperm(256, generator=generator)[:64] for _ in range(4)])
    grads = set()
    for _ in range(50):
        model.zero_grad(set_to_none=True)
        model.encode_tubelets(tubelets, ids, model.config.grid).square().sum().backward()
        grads.add(model.pos_embed.grad.numpy().tobytes())
    assert len(grads) == 1
