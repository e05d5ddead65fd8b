"""python -m fourd.export: real pretraining checkpoints (sharded FSDP2 and single-file) -> one safetensors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fourd.export import main
from fourd.models.mae import DecoderConfig, MAEConfig, MaskedAutoencoder
from fourd.models.vit import ViTConfig
from fourd.train.checkpoint_export import export_checkpoint
from fourd.weights import load, load_encoder, read_weights
from tests.helpers import REPO

TINY = [
    "+exp=demo",
    "trainer.max_steps=2",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.dataset.num_clips=16",
    "trainer.enable_checkpointing=true",
    "checkpoint.every_n_steps=1",
    "export_encoder=true",
    "images.every_n_steps=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
RUNS = {"fsdp": ["strategy=fsdp", "trainer.devices=2"], "single": ["strategy=auto"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two tiny pretraining runs at once: FSDP2 over 2 processes (sharded checkpoints) and one process (files)."""
    root = tmp_path_factory.mktemp("runs")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fourd.train", *TINY, *extra, f"hydra.run.dir={root / name}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, extra in RUNS.items()
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-4000:]
    return {name: root / name for name in RUNS}


def newest_checkpoint(run_dir: Path) -> Path:
    found = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    assert found, f"no checkpoint under {run_dir / 'checkpoints'}"
    return found[-1]


def assert_same_encoder(exported: Path, run_dir: Path) -> None:
    ours, meta = read_weights(exported)
    ref, ref_meta = read_weights(run_dir / "encoder.safetensors")
    assert sorted(ours) == sorted(ref)
    for key in ref:
        assert ours[key].dtype == ref[key].dtype and torch.equal(ours[key], ref[key]), key
    assert meta["kind"] == "encoder" and meta["config"] == ref_meta["config"]
    assert meta["mae_config"] == ref_meta["mae_config"] and meta["global_step"] == ref_meta["global_step"] == "2"
    load_encoder(exported)  # what fourd.load / the probes do


@pytest.mark.slow
def test_sharded_checkpoint_exports_the_runs_encoder(runs, tmp_path, capsys):
    ckpt = newest_checkpoint(runs["fsdp"])
    assert ckpt.is_dir() and sorted(p.name for p in ckpt.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    out = tmp_path / "encoder.safetensors"
    assert main([str(ckpt), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert_same_encoder(out, runs["fsdp"])

    # a run directory stands for its newest complete checkpoint
    export_checkpoint(runs["fsdp"], tmp_path / "from_run_dir.safetensors")
    assert_same_encoder(tmp_path / "from_run_dir.safetensors", runs["fsdp"])


@pytest.mark.slow
def test_single_file_checkpoint_exports_the_runs_encoder(runs, tmp_path):
    ckpt = newest_checkpoint(runs["single"])
    assert ckpt.is_file()
    out = export_checkpoint(ckpt, tmp_path / "encoder.safetensors")
    assert_same_encoder(out, runs["single"])


@pytest.mark.slow
@pytest.mark.parametrize("run", ["fsdp", "single"])
def test_mae_export_holds_encoder_and_decoder(runs, tmp_path, run):
    out = export_checkpoint(newest_checkpoint(runs[run]), tmp_path / "mae.safetensors", what="mae")
    mae = load(out)  # the one loader reads encoder, depth model and MAE files
    assert isinstance(mae, MaskedAutoencoder) and not mae.training
    assert read_weights(out)[1]["kind"] == "mae"
    assert any(k.startswith("decoder.") for k in mae.state_dict())
    ref, _ = read_weights(runs[run] / "encoder.safetensors")
    for key, value in ref.items():
        assert torch.equal(mae.encoder.state_dict()[key], value), key


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fourd.export", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def assert_one_error_line(stderr: str, *needles: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_checkpoint_cli(tmp_path):
    out = tmp_path / "out.safetensors"
    proc = run_cli(str(tmp_path / "nope.ckpt"), "--out", str(out))
    assert proc.returncode == 1
    assert_one_error_line(proc.stderr, str(tmp_path / "nope.ckpt"), "no checkpoint")
    assert list(tmp_path.iterdir()) == []


def test_unknown_what_is_one_error_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope.ckpt"), "--what", "decoder", "--out", str(tmp_path / "x.safetensors")]) == 1
    assert_one_error_line(capsys.readouterr().err, "unknown export 'decoder'", "encoder", "mae")
    assert list(tmp_path.iterdir()) == []


def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"model.encoder.x": torch.zeros(2)}, "hyper_parameters": {}}, plain)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    return {
        "not a torch.save archive": text,
        "not written by fourd pretraining": plain,
        "no complete step_*.ckpt": empty,
    }


@pytest.mark.parametrize(
    "case", ["not a torch.save archive", "not written by fourd pretraining", "no complete step_*.ckpt"]
)
def test_bad_input_is_one_error_line_and_writes_nothing(tmp_path, capsys, case):
    src = bad_inputs(tmp_path)[case]
    out_dir = tmp_path / "out"
    assert main([str(src), "--out", str(out_dir / "x.safetensors")]) == 1
    assert_one_error_line(capsys.readouterr().err, str(src), case)
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.mark.slow
def test_damaged_sharded_checkpoint_writes_nothing(runs, tmp_path, capsys):
    broken = tmp_path / "step_000000002.ckpt"
    shutil.copytree(newest_checkpoint(runs["fsdp"]), broken)
    shard = broken / "__1_0.distcp"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    out_dir = tmp_path / "out"
    assert main([str(broken), "--out", str(out_dir / "x.safetensors")]) == 1
    assert_one_error_line(capsys.readouterr().err, str(broken), "could not read its shards")
    assert not out_dir.exists() or list(out_dir.iterdir()) == []

    (broken / "meta.pt").unlink()
    assert main([str(broken), "--out", str(out_dir / "x.safetensors")]) == 1
    assert_one_error_line(capsys.readouterr().err, str(broken), "meta.pt")


def tiny_checkpoint(path: Path) -> Path:
    """A single-file checkpoint as a fourd pretraining run writes it (module state and its MAE config)."""
    encoder = ViTConfig(width=32, depth=1, heads=2, mlp=64, patch_size=(2, 8, 8), num_frames=4, image_size=16)
    config = MAEConfig(encoder, DecoderConfig(width=32, depth=1, heads=2, mlp=64))
    state = {f"model.{k}": v for k, v in MaskedAutoencoder(config).state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"model": config.to_dict()}, "global_step": 2}, path)
    return path


def test_the_output_is_never_the_checkpoint_and_replaces_a_file_only_on_purpose(tmp_path, capsys):
    """`--out step.ckpt` equal to its input turned the checkpoint into a safetensors."""
    ckpt = tiny_checkpoint(tmp_path / "step.ckpt")
    before = ckpt.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert main([str(ckpt), "--out", str(ckpt), *extra]) == 1
        assert_one_error_line(capsys.readouterr().err, "is also an input")
    assert ckpt.read_bytes() == before
    mine = tmp_path / "encoder.safetensors"
    mine.write_bytes(b"mine")
    assert main([str(ckpt), "--out", str(mine)]) == 1
    assert_one_error_line(capsys.readouterr().err, "exists", "--overwrite")
    assert mine.read_bytes() == b"mine"
    assert main([str(ckpt), "--out", str(mine), "--overwrite"]) == 0
    assert load_encoder(mine).config.width == 32
