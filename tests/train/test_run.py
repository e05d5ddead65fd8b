"""Real pretraining runs (1 process, 2-process DDP and FSDP2 over gloo) work end to end."""

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fourd.conf import compose
from fourd.train.checkpoints import RollingCheckpoint, latest_checkpoint
from fourd.weights import load_encoder
from tests.helpers import REPO, assert_quiet
from tests.helpers.configs import composed
from tests.helpers.logs import read_metric

TINY = [
    "data.batch_size=4",
    "data.num_workers=0",
    "data.dataset.num_clips=64",
    "trainer.log_every_n_steps=1",
    "images.every_n_steps=2",
    "checkpoint.every_n_steps=2",
    "throughput_window=2",
]


def run_train(
    tmp_path: Path, *overrides: str, timeout: int = 600, warnings: str = "ignore"
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": warnings}
    cmd = [sys.executable, "-m", "fourd.train", "+exp=demo", f"hydra.run.dir={tmp_path}", *TINY, *overrides]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def assert_run_outputs(run_dir: Path, steps: int) -> None:
    assert latest_checkpoint(run_dir / "checkpoints").name == f"step_{steps:09d}.ckpt"
    assert (run_dir / f"reconstructions/step_{steps:07d}.png").stat().st_size > 0
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    encoder = load_encoder(run_dir / "encoder.safetensors")
    assert encoder.config.width == 128 and not any(
        k.startswith(("module.", "_orig_mod.", "encoder.")) for k in encoder.state_dict()
    )
    losses = read_metric(run_dir, "train/loss")
    assert sorted(losses) == list(range(steps)) and all(math.isfinite(v) for v in losses.values())
    header = open(run_dir / "csv" / "version_0" / "metrics.csv").readline()
    for metric in ("lr-AdamW", "train/device/samples_per_sec", "train/device/items_per_sec", "data/skipped_videos"):
        assert metric in header


def test_dry_run_builds_vit_g(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fourd.train", "+exp=vit_g", "dry_run=true", f"hydra.run.dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "encoder 1,014,378,880 params" in proc.stdout + proc.stderr
    assert_quiet(proc.stdout + proc.stderr)  # the Trainer is built


@pytest.mark.slow
def test_single_process_run(tmp_path):
    proc = run_train(tmp_path, "trainer.max_steps=4", warnings="default")
    assert_run_outputs(tmp_path, 4)
    assert_quiet(proc.stdout + proc.stderr)


@pytest.mark.slow
def test_ddp_two_processes(tmp_path):
    proc = run_train(tmp_path, "trainer.max_steps=4", "trainer.devices=2", "strategy=ddp")
    assert "distributed_backend=gloo" in proc.stdout + proc.stderr
    assert "All distributed processes registered. Starting with 2 processes" in proc.stdout + proc.stderr
    assert_run_outputs(tmp_path, 4)


def sharding_lines(run_dir: Path) -> list[tuple[int, int, int]]:
    text = "".join(p.read_text() for p in run_dir.glob("*.log"))
    found = re.findall(r"FSDP2 rank (\d): mesh .* holds ([\d,]+) of ([\d,]+) parameter scalars", text)
    return sorted({(int(r), int(a.replace(",", "")), int(b.replace(",", ""))) for r, a, b in found})


@pytest.mark.slow
def test_fsdp_two_processes_shards_checkpoints_resumes_and_exports(tmp_path):
    run_train(tmp_path, "trainer.max_steps=4", "trainer.devices=2", "strategy=fsdp")
    lines = sharding_lines(tmp_path)
    assert [r for r, _, _ in lines] == [0, 1]
    total = lines[0][2]
    assert all(local < 0.6 * total for _, local, _ in lines)  # each rank holds about half
    assert sum(local for _, local, _ in lines) == total
    shards = sorted(p.name for p in (tmp_path / "checkpoints" / "step_000000004.ckpt").glob("*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]
    assert_run_outputs(tmp_path, 4)

    proc = run_train(tmp_path, "trainer.max_steps=6", "trainer.devices=2", "strategy=fsdp", "resume=auto")
    assert "Restored all states from the checkpoint" in proc.stdout + proc.stderr
    resumed = read_metric(tmp_path, "train/loss")
    assert set(resumed) == {0, 1, 2, 3, 4, 5}
    second_attempt = [
        int(r["step"])
        for r in csv.DictReader(open(tmp_path / "csv" / "version_1" / "metrics.csv"))
        if r.get("train/loss")
    ]
    assert second_attempt == [4, 5]  # continued at step 4, not from scratch


@pytest.mark.slow
def test_fsdp_hybrid_sharding_mesh(tmp_path):
    run_train(
        tmp_path,
        "trainer.max_steps=2",
        "trainer.devices=2",
        "strategy=fsdp",
        "strategy.sharding=hybrid",
        "strategy.shard_size=1",
    )
    text = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert "mesh (2, 1) (hybrid)" in text


@pytest.mark.parametrize(
    "source,message",
    [("does/not/exist", "video source not found"), ("EMPTY", "no videos"), ("UNREADABLE", "no readable video")],
)
def test_missing_empty_or_unreadable_video_source_fails_at_start(tmp_path, source, message):
    if source in ("EMPTY", "UNREADABLE"):
        folder = tmp_path / "videos"
        folder.mkdir()
        for i in range(3 if source == "UNREADABLE" else 0):
            (folder / f"{i}.mp4").write_bytes(b"")
        source = str(folder)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fourd.train",
            "+exp=demo",
            "data=video",
            f"data.dataset.source={source}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode != 0
    assert message in proc.stderr and source in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("enabled", [True, False])
def test_enable_checkpointing_switches_the_checkpoint_callback(tmp_path, enabled):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from fourd.train.run import build_trainer

    cfg = composed("train", "+exp=demo", f"trainer.enable_checkpointing={enabled}")
    trainer = build_trainer(cfg, tmp_path, tokens_per_clip=256)
    assert any(isinstance(c, RollingCheckpoint) for c in trainer.callbacks) == enabled
    assert not any(isinstance(c, ModelCheckpoint) for c in trainer.callbacks)  # Lightning adds none of its own


@pytest.mark.slow
def test_the_demo_loss_falls_by_a_margin(tmp_path):
    """On the demo recipe and seed, the mean loss of steps 110-119 is under half that of steps 20-29 (after the
    first drop from the initial weights): the MAE learns the clips, not only their mean colour."""
    cmd = [
        sys.executable,
        "-m",
        "fourd.train",
        "+exp=demo",
        f"hydra.run.dir={tmp_path}",
        "trainer.max_steps=120",
        "data.num_workers=0",
        "trainer.enable_checkpointing=false",
        "images.every_n_steps=0",
        "trainer.log_every_n_steps=1",
        "export_encoder=false",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = read_metric(tmp_path, "train/loss")
    early, late = (sum(losses[s] for s in range(a, a + 10)) / 10 for a in (20, 110))
    assert late < 0.5 * early, (early, late)


@pytest.mark.slow
def test_resuming_with_another_max_steps_says_the_schedule_is_rebuilt(tmp_path, caplog):
    from fourd.train.run import train

    def run(*overrides: str) -> None:
        train(compose("train", ["+exp=demo", *TINY, "trainer.enable_progress_bar=false", *overrides]), tmp_path)

    run("trainer.max_steps=2")
    run("trainer.max_steps=4", "resume=auto")
    assert "scheduled for 2 steps, this one for 4 (trainer.max_steps changed)" in caplog.text
    caplog.clear()
    run("trainer.max_steps=4", "resume=auto")  # the same 4 steps: nothing to say
    assert "trainer.max_steps changed" not in caplog.text


def test_resume_auto_in_a_timestamped_run_directory_warns_it_can_never_resume(caplog):
    from fourd.train.run import warn_if_never_resumes

    timestamped = compose("train", ["+exp=demo"], return_hydra_config=True).hydra
    fixed = compose("train", ["+exp=demo", "hydra.run.dir=outputs/fixed"], return_hydra_config=True).hydra
    warn_if_never_resumes("auto", fixed)
    warn_if_never_resumes(None, timestamped)
    assert "can never resume" not in caplog.text
    warn_if_never_resumes("auto", timestamped)
    assert "can never resume. Set hydra.run.dir to a fixed path" in caplog.text


def test_resume_auto_under_multirun_checks_the_sweep_directory(caplog):
    from hydra.types import RunMode

    from fourd.train.run import warn_if_never_resumes

    overrides = ["+exp=demo", "hydra.sweep.dir=outputs/sweep"]  # hydra.run.dir keeps its time stamp
    swept = compose("train", overrides, return_hydra_config=True).hydra
    swept.mode = RunMode.MULTIRUN
    warn_if_never_resumes("auto", swept)
    assert "can never resume" not in caplog.text
    swept.sweep.dir = "multirun/${now:%Y-%m-%d}"
    warn_if_never_resumes("auto", swept)
    assert "Set hydra.sweep.dir to a fixed path" in caplog.text
