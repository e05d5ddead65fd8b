"""Official .npz -> fourd safetensors -> fourd.load reproduces the JAX outputs; bad inputs fail cleanly."""

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

import fourd
from fourd.convert import main
from fourd.models.depth_model import DepthModel
from fourd.models.vit import SpaceTimeViT
from fourd.weights import CheckpointError, save_weights
from tests.helpers import load_fixture_pair


def video_of(io):
    return torch.from_numpy(io["video"]).permute(0, 4, 1, 2, 3)


def encoder_only_npz(params: dict, path) -> None:
    """The encoder-only release layout (params/encoder, params/processor) built from the depth fixture."""
    np.savez(
        path,
        **{
            "params/" + k.removeprefix("params/layers_0/"): v
            for k, v in params.items()
            if k.startswith("params/layers_0/")
        },
    )


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("strong,tol", [(False, 1e-5), (True, 5e-5)])
def test_converted_depth_model_matches_jax(fixtures_dir, tmp_path, capsys, strong, tol):
    suffix = "_strong" if strong else ""
    dst = tmp_path / "depth.safetensors"
    code, out, _ = run_cli([fixtures_dir / "r4d_tiny" / f"params{suffix}.npz", dst, "--output-patch", "2,4,4"], capsys)
    assert code == 0 and "wrote" in out
    model = fourd.load(dst)
    assert isinstance(model, DepthModel) and not model.training
    _, io = load_fixture_pair(fixtures_dir, strong)
    with torch.no_grad():
        depth = model(video_of(io))
        feats = model.features(video_of(io))
    errors = {"output": (depth - torch.from_numpy(io["output"][..., 0])).abs().max().item()}
    errors |= {
        f"features_{i}": (f - torch.from_numpy(io[f"features_{i}"])).abs().max().item() for i, f in enumerate(feats)
    }
    assert depth.shape == (1, 4, 32, 32)
    assert max(errors.values()) <= tol, errors
    with safe_open(str(dst), "pt") as f:
        meta = f.metadata()
    assert meta["kind"] == "depth" and json.loads(meta["config"])["readout"]["output_patch"] == [2, 4, 4]


def test_encoder_only_layout(fixtures_dir, tmp_path, capsys):
    params, io = load_fixture_pair(fixtures_dir, strong=False)
    encoder_only_npz(params, tmp_path / "enc.npz")
    code, _, _ = run_cli([tmp_path / "enc.npz", tmp_path / "enc.safetensors", "--num-frames", "4"], capsys)
    assert code == 0
    model = fourd.load(tmp_path / "enc.safetensors")
    assert isinstance(model, SpaceTimeViT) and model.config.num_frames == 4
    with torch.no_grad():
        feats = model.features(video_of(io))
    for i, feat in enumerate(feats):
        assert (feat - torch.from_numpy(io[f"features_{i}"])).abs().max() <= 1e-5


def test_readout_depth_override_is_stored(fixtures_dir, tmp_path, capsys):
    dst = tmp_path / "d.safetensors"
    src = fixtures_dir / "r4d_tiny" / "params.npz"
    run_cli([src, dst, "--output-patch", "2,4,4", "--readout-depth", "0.5"], capsys)
    assert fourd.load(dst).config.readout.readout_depth == 0.5


def assert_clean_failure(code, out, err, dst, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]
    assert not dst.exists() and not list(dst.parent.glob(f".{dst.name}*"))


def test_truncated_npz(fixtures_dir, tmp_path, capsys):
    data = (fixtures_dir / "r4d_tiny" / "params.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    dst = tmp_path / "out.safetensors"
    assert_clean_failure(*run_cli([tmp_path / "cut.npz", dst], capsys), dst, "not a readable .npz")


def test_a_text_file_or_a_folder_as_the_source_is_named_as_such(tmp_path, capsys):
    (tmp_path / "notes.npz").write_text("not a checkpoint\n")
    (tmp_path / "folder.npz").mkdir()
    dst = tmp_path / "out.safetensors"
    assert_clean_failure(*run_cli([tmp_path / "notes.npz", dst], capsys), dst, "no zip archive (truncated, or another")
    assert_clean_failure(*run_cli([tmp_path / "folder.npz", dst], capsys), dst, "is a folder: name the official .npz")


@pytest.mark.parametrize("damage", ["nan", "int32"])
def test_non_finite_or_integer_weights_are_refused_by_name(fixtures_dir, tmp_path, capsys, damage):
    params = dict(np.load(fixtures_dir / "r4d_tiny" / "params.npz"))
    key = sorted(params)[3]
    params[key] = params[key].astype(np.int32) if damage == "int32" else np.full_like(params[key], np.nan)
    np.savez(tmp_path / "damaged.npz", **params)
    dst = tmp_path / "out.safetensors"
    expected = "holds nan or inf in 1 tensors" if damage == "nan" else "1 arrays are not floating point"
    assert_clean_failure(
        *run_cli([tmp_path / "damaged.npz", dst, "--output-patch", "2,4,4"], capsys), dst, expected, key
    )


def test_npz_of_another_model(tmp_path, capsys):
    np.savez(tmp_path / "resnet.npz", **{"params/conv1/kernel": np.zeros((3, 3, 3, 8), np.float32)})
    dst = tmp_path / "out.safetensors"
    assert_clean_failure(*run_cli([tmp_path / "resnet.npz", dst], capsys), dst, "no 4DS encoder found")


def test_unconsumed_and_misshapen_keys_are_named(fixtures_dir, tmp_path, capsys):
    params, _ = load_fixture_pair(fixtures_dir, strong=False)
    np.savez(tmp_path / "extra.npz", **params, **{"params/layers_0/encoder/extra/bias": np.zeros(3, np.float32)})
    dst = tmp_path / "out.safetensors"
    assert_clean_failure(
        *run_cli([tmp_path / "extra.npz", dst, "--output-patch", "2,4,4"], capsys),
        dst,
        "params/layers_0/encoder/extra/bias",
        "not consumed",
    )
    bad = dict(params)
    bad["params/layers_0/processor/layers_1/mlp/dense_out/bias"] = np.zeros(65, np.float32)
    np.savez(tmp_path / "shape.npz", **bad)
    assert_clean_failure(
        *run_cli([tmp_path / "shape.npz", dst, "--output-patch", "2,4,4"], capsys), dst, "blocks.1.mlp.fc2.bias"
    )
    assert_clean_failure(
        *run_cli([fixtures_dir / "r4d_tiny" / "params.npz", dst], capsys), dst, "output patch"
    )  # the release default 2x8x8 does not fit this tiny readout


def test_safetensors_with_mismatching_config(fixtures_dir, tmp_path, capsys):
    dst = tmp_path / "d.safetensors"
    run_cli([fixtures_dir / "r4d_tiny" / "params.npz", dst, "--output-patch", "2,4,4"], capsys)
    model = fourd.load(dst)
    config = model.config.to_dict()
    config["encoder"]["depth"] = 5
    save_weights(tmp_path / "lie.safetensors", model.state_dict(), "depth", config)
    with pytest.raises(CheckpointError, match=r"missing \(12\): encoder.blocks.4"):
        fourd.load(tmp_path / "lie.safetensors")


def test_the_output_never_overwrites_the_source(fixtures_dir, tmp_path, capsys):
    src = tmp_path / "params.npz"
    src.write_bytes((fixtures_dir / "r4d_tiny" / "params.npz").read_bytes())
    before = src.read_bytes()
    assert main([str(src), str(src)]) == 1
    assert "is also an input" in capsys.readouterr().err
    assert main([str(src), str(src), "--overwrite"]) == 1  # not even on purpose
    assert src.read_bytes() == before


def test_an_existing_output_is_replaced_only_with_overwrite(fixtures_dir, tmp_path, capsys):
    """`fourd.convert params.npz existing.safetensors` replaced an unrelated file."""
    src = fixtures_dir / "r4d_tiny" / "params.npz"
    dst = tmp_path / "existing.safetensors"
    dst.write_bytes(b"someone else's weights")
    code, _, err = run_cli([src, dst, "--output-patch", "2,4,4"], capsys)
    assert code == 1 and "exists: choose another output, or pass --overwrite" in err
    assert dst.read_bytes() == b"someone else's weights"
    code, _, _ = run_cli([src, dst, "--output-patch", "2,4,4", "--overwrite"], capsys)
    assert code == 0 and isinstance(fourd.load(dst), DepthModel)


def test_a_readout_depth_outside_the_encoder_writes_nothing(fixtures_dir, tmp_path, capsys):
    dst = tmp_path / "d.safetensors"
    src = fixtures_dir / "r4d_tiny" / "params.npz"
    code = main([str(src), str(dst), "--output-patch", "2,4,4", "--readout-depth", "7"])
    out, err = capsys.readouterr()
    assert_clean_failure(code, out, err, dst, "readout_depth 7.0 is not a relative depth")
