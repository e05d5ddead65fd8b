"""Faults reproduced for real on CPU: kill -9 and resume (2 nodes, hybrid FSDP, torchrun), a death inside a
checkpoint write, SIGTERM preemption, Ctrl-C, 10% corrupt videos, and non-finite losses."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fourd.errors import PREEMPTED_EXIT_CODE
from fourd.train.checkpoints import list_checkpoints
from fourd.train.nonfinite import NonFiniteLossError
from tests.helpers import REPO
from tests.helpers.logs import read_metric
from tests.helpers.videos import write_broken_video, write_test_video

STEPS = 10
RUN = [
    "+exp=demo",
    f"trainer.max_steps={STEPS}",
    "data.batch_size=4",
    "data.num_workers=1",
    "trainer.log_every_n_steps=1",
    "checkpoint.every_n_steps=2",
    "images.every_n_steps=0",
    "export_encoder=false",
]
SYNTHETIC = ["data.dataset.num_clips=24"]  # 6 batches per epoch (3 per rank on 2 nodes): runs cross epochs
TWO_NODES = ["trainer.num_nodes=2", "trainer.devices=1", "strategy=fsdp", "strategy.sharding=hybrid"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def start(args: list[str], log: Path) -> subprocess.Popen:
    """A process in its own session, so that it can be killed with its data workers."""
    return subprocess.Popen(
        args, cwd=REPO, env=ENV, stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True
    )


def train(run_dir: Path, *overrides: str, data: list[str] = SYNTHETIC) -> subprocess.Popen:
    return start(
        [sys.executable, "-m", "fourd.train", *RUN, *data, f"hydra.run.dir={run_dir}", *overrides],
        run_dir.with_suffix(".log"),
    )


def train_two_nodes(run_dir: Path, *overrides: str) -> list[subprocess.Popen]:
    """Two torchrun 'nodes' of one process each on this machine, as on a cluster (static rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [
        start(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes=2",
                f"--node-rank={rank}",
                "--nproc-per-node=1",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "fourd.train",
                *RUN,
                *SYNTHETIC,
                *TWO_NODES,
                f"hydra.run.dir={run_dir}",
                *overrides,
            ],
            run_dir.with_suffix(f".node{rank}.log"),
        )
        for rank in (0, 1)
    ]


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_9(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything it started, all at once."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


def finish(procs: list[subprocess.Popen], log: Path, timeout: float = 300) -> None:
    for proc in procs:
        assert proc.wait(timeout=timeout) == 0, log.read_text()[-4000:]


def logged_steps(run_dir: Path) -> int:
    """Highest step with a loss in the newest attempt's CSV (flushed every logged step), -1 if none yet."""
    files = sorted((run_dir / "csv").glob("version_*/metrics.csv"))
    if not files:
        return -1
    with open(files[-1], newline="") as file:
        steps = [int(row["step"]) for row in csv.DictReader(file) if row.get("train/loss")]
    return max(steps, default=-1)


def wait_until(condition, procs: list[subprocess.Popen], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert all(p.poll() is None for p in procs), "run ended before the fault was injected"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


def attempt_losses(run_dir: Path, attempt: int) -> dict[int, float]:
    with open(run_dir / "csv" / f"version_{attempt}" / "metrics.csv", newline="") as file:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(file) if r.get("train/loss")}


@pytest.fixture(scope="module")
def single_process_losses(tmp_path_factory) -> dict[int, float]:
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    finish([train(run_dir)], run_dir.with_suffix(".log"))
    losses = read_metric(run_dir, "train/loss")
    assert sorted(losses) == list(range(STEPS))
    return losses


@pytest.mark.slow
def test_kill_9_on_two_nodes_then_resume_auto_gives_identical_losses(tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    finish(train_two_nodes(uninterrupted), uninterrupted.with_suffix(".node0.log"))
    expected = read_metric(uninterrupted, "train/loss")
    assert sorted(expected) == list(range(STEPS))

    run_dir = tmp_path / "killed"
    kill_step = random.randint(3, STEPS - 3)
    print(f"SIGKILL after step {kill_step}")
    nodes = train_two_nodes(run_dir)
    wait_until(lambda: logged_steps(run_dir) >= kill_step, nodes)
    for node in nodes:
        kill_9(node)  # the torchrun agent, its worker and the worker's data loader process
    resume_from = max(step for step, _ in list_checkpoints(run_dir / "checkpoints"))
    assert 2 <= resume_from <= logged_steps(run_dir) + 1  # step_N.ckpt holds N updates: logged steps 0..N-1

    finish(train_two_nodes(run_dir, "resume=auto"), run_dir.with_suffix(".node0.log"))
    before, after = attempt_losses(run_dir, 0), attempt_losses(run_dir, 1)
    print(f"resumed from step_{resume_from}; step | uninterrupted | killed run | resumed run")
    for step, loss in expected.items():
        print(f"{step} | {loss!r} | {before.get(step, '')!r} | {after.get(step, '')!r}")
    assert min(after) == resume_from and max(after) == STEPS - 1
    assert all(before[step] == expected[step] for step in before)  # bit for bit
    assert all(after[step] == expected[step] for step in after)
    assert read_metric(run_dir, "train/loss") == expected


@pytest.mark.slow
def test_death_inside_a_checkpoint_write_leaves_the_previous_one_intact_and_used(tmp_path, single_process_losses):
    run_dir = tmp_path / "run"
    log = run_dir.with_suffix(".log")
    died = start(
        [
            sys.executable,
            str(REPO / "tests" / "helpers" / "fault_injection.py"),
            "die-in-checkpoint-write",
            "2",
            *RUN,
            *SYNTHETIC,
            f"hydra.run.dir={run_dir}",
        ],
        log,
    )
    assert died.wait(timeout=300) == -signal.SIGKILL
    checkpoints = run_dir / "checkpoints"
    assert [step for step, _ in list_checkpoints(checkpoints)] == [2]
    assert (checkpoints / ".tmp-step_000000004.ckpt").exists()  # the half-written one, never under a real name

    finish([train(run_dir, "resume=auto")], log)
    text = log.read_text()
    assert "left by a run killed while writing it" in text
    assert f"resuming from {checkpoints / 'step_000000002.ckpt'}" in text
    assert not list(checkpoints.glob(".tmp-*"))
    assert read_metric(run_dir, "train/loss") == single_process_losses


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_stops_and_resumes_exactly(tmp_path, single_process_losses):
    run_dir = tmp_path / "run"
    log = run_dir.with_suffix(".log")
    proc = train(run_dir, "export_encoder=true")
    wait_until(lambda: logged_steps(run_dir) >= 3, [proc])
    os.kill(proc.pid, signal.SIGTERM)  # the main process only, as a scheduler's preemption notice
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE  # saved, not finished
    saved = [step for step, _ in list_checkpoints(run_dir / "checkpoints")]
    stopped_at = logged_steps(run_dir) + 1
    assert saved[-1] == stopped_at < STEPS  # saved at the very step it stopped, not at a multiple of 2
    assert "SIGTERM received; stopping after step" in log.read_text()
    assert not (run_dir / "encoder.safetensors").exists()  # an interrupted run is no release

    finish([train(run_dir, "resume=auto", "export_encoder=true")], log)
    assert read_metric(run_dir, "train/loss") == single_process_losses
    assert (run_dir / "encoder.safetensors").exists()


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_stops_like_sigterm(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it, data workers included."""
    run_dir = tmp_path / "run"
    proc = train(run_dir)
    wait_until(lambda: logged_steps(run_dir) >= 2, [proc])
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE
    assert list_checkpoints(run_dir / "checkpoints")[-1][0] == logged_steps(run_dir) + 1 < STEPS
    assert "SIGINT received; stopping after step" in run_dir.with_suffix(".log").read_text()


@pytest.mark.slow
def test_sigusr1_on_slurm_saves_then_requeues_the_job(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol_calls"
    scontrol = bin_dir / "scontrol"  # stands in for SLURM's; records what fourd asks of it
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    run_dir = tmp_path / "run"
    env = {**ENV, "PATH": f"{bin_dir}:{ENV['PATH']}", "SLURM_JOB_ID": "4242"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fourd.train", *RUN, *SYNTHETIC, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: logged_steps(run_dir) >= 2, [proc])
    os.kill(proc.pid, signal.SIGUSR1)  # what `#SBATCH --signal=USR1@120` sends before the time limit
    assert proc.wait(timeout=120) == PREEMPTED_EXIT_CODE
    assert calls.read_text().split() == ["requeue", "4242"]
    assert list_checkpoints(run_dir / "checkpoints")[-1][0] == logged_steps(run_dir) + 1


@pytest.mark.slow
def test_ten_percent_corrupt_videos_are_skipped_and_counted(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    broken = {3: "truncated", 13: "text"}  # 2 of 20, not neighbours
    for i in range(20):
        path = videos / f"clip_{i:02d}.mp4"
        write_broken_video(path, broken[i]) if i in broken else write_test_video(path, num_frames=16)
    run_dir = tmp_path / "run"
    video_data = ["data=video", f"data.dataset.source={videos}", "data.dataset.stride=1", "data.batch_size=4"]
    video_data.append("data.dataset.augment=device")  # Lightning crops each batch after the transfer
    finish([train(run_dir, data=video_data)], run_dir.with_suffix(".log"))  # all 20, twice
    assert read_metric(run_dir, "data/skipped_videos")[STEPS - 1] == 4
    summary = f"skipped 2 unreadable videos (passed over 4 times): {videos / 'clip_03.mp4'}, {videos / 'clip_13.mp4'}"
    assert summary in run_dir.with_suffix(".log").read_text()
    assert len(read_metric(run_dir, "train/loss")) == STEPS


def nan_at(steps: set[int]):
    """A MaskedAutoencoder.forward whose loss is nan on the given calls (0-based), else the real one."""
    from fourd.models.mae import MaskedAutoencoder

    real_forward = MaskedAutoencoder.forward
    calls = []

    def forward(self, *args, **kwargs):
        out = real_forward(self, *args, **kwargs)
        calls.append(len(calls))
        return out._replace(loss=out.loss * torch.nan) if calls[-1] in steps else out

    return forward


def train_in_process(tmp_path: Path, *overrides: str):
    from fourd.conf import compose
    from fourd.train.run import train

    cfg = compose(
        "train",
        [
            *RUN,
            *SYNTHETIC,
            "data.num_workers=0",
            "trainer.enable_progress_bar=false",
            "trainer.enable_checkpointing=false",
            *overrides,
        ],
    )
    return train(cfg, tmp_path)


@pytest.mark.slow
def test_non_finite_steps_are_skipped_and_reported(tmp_path, monkeypatch, caplog):
    from fourd.models.mae import MaskedAutoencoder

    monkeypatch.setattr(MaskedAutoencoder, "forward", nan_at({3, 4}))
    trainer = train_in_process(tmp_path, "trainer.max_steps=6")
    assert trainer.global_step == 6
    assert read_metric(tmp_path, "train/skipped_steps")[5] == 2
    losses = read_metric(tmp_path, "train/loss")
    assert [step for step, loss in losses.items() if math.isnan(loss)] == [3, 4]
    assert "step 3: loss is nan" in caplog.text and "2 in a row, 2 in total" in caplog.text


@pytest.mark.slow
def test_k_non_finite_steps_in_a_row_stop_the_run_with_a_clear_message(tmp_path, monkeypatch):
    from fourd.models.mae import MaskedAutoencoder

    monkeypatch.setattr(MaskedAutoencoder, "forward", nan_at(set(range(2, 100))))
    with pytest.raises(
        NonFiniteLossError,
        match=r"nan or inf for 3 steps in a row \(steps 2 to 4\); the last "
        r"finite loss was [\d.]+ at step 1\. Stopping\.",
    ):
        train_in_process(tmp_path, "max_bad_steps=3")
