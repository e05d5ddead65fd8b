"""Chunk stores: lazy reads equal what was written, a killed extraction resumes without recomputing a chunk,
concurrent runs compute each chunk once, a damaged chunk is named and computed again, disk space is checked."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fourd.errors import PREEMPTED_EXIT_CODE, ConfigError
from fourd.probe.store import ChunkPlan, ChunkStore, StoredSplit, check_disk
from tests.helpers import REPO

NUM_CLIPS, CHUNK_CLIPS = 10, 3  # chunks of 3, 3, 3 and 1 clips


def rows(clips: range) -> dict[str, torch.Tensor]:
    """What clip i's row holds: a float map and an integer label, both from i."""
    index = torch.tensor(list(clips), dtype=torch.float32)
    return {"features": index[:, None, None].expand(-1, 2, 4).half(), "label": index.long() * 10}


def test_rows_read_lazily_equal_what_was_written(tmp_path):
    store = ChunkStore(tmp_path, ChunkPlan(NUM_CLIPS, CHUNK_CLIPS))
    assert store.fill(rows) == 4
    assert sorted(p.name for p in tmp_path.glob("chunk_*.safetensors")) == [
        f"chunk_00000{i}.safetensors" for i in range(4)
    ]
    split = StoredSplit([store.reader()])
    assert len(split) == NUM_CLIPS
    for index in range(NUM_CLIPS):
        assert split[index]["label"] == 10 * index and torch.equal(
            split[index]["features"], rows(range(index, index + 1))["features"][0]
        )
    assert torch.equal(split.stacked()["label"], torch.arange(NUM_CLIPS) * 10)
    assert "features" not in split.stacked() and split.stacked(4, features=True)["features"].shape == (4, 2, 4)
    assert torch.equal(split.stacked(4)["label"], torch.tensor([0, 30, 60, 90]))  # spread over the split
    assert store.fill(rows) == 0  # all there: nothing computed again


def test_a_damaged_chunk_is_named_discarded_and_computed_again(tmp_path, caplog):
    store = ChunkStore(tmp_path, ChunkPlan(NUM_CLIPS, CHUNK_CLIPS))
    store.fill(rows)
    damaged = store.path(1)
    damaged.write_bytes(damaged.read_bytes()[:40])  # cut short, as by a full disk
    assert store.missing() == [1]
    assert f"discarding damaged cache file {damaged}" in caplog.text
    assert store.fill(rows) == 1
    assert torch.equal(StoredSplit([store.reader()])[4]["label"], torch.tensor(40))


def test_a_store_that_would_not_fit_stops_before_computing(tmp_path):
    with pytest.raises(ConfigError, match=f"need 1000000.00 GB but {tmp_path} has .* GB free"):
        check_disk(tmp_path, 10**15, "features of x")


FILL = textwrap.dedent(
    """
    import os, signal, sys, time
    import torch
    from fourd.probe.store import ChunkPlan, ChunkStore
    folder, log, die_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    done = 0

    def compute(clips):
        global done
        if done == die_after:
            os.kill(os.getpid(), signal.SIGKILL)  # killed while computing this chunk
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {clips.start}\\n")
        done += 1
        index = torch.tensor(list(clips), dtype=torch.float32)
        return {"features": index[:, None].half(), "label": index.long()}

    print(ChunkStore(folder, ChunkPlan(int(sys.argv[4]), int(sys.argv[5]))).fill(compute))
    """
)


def start_fill(folder: Path, log: Path, die_after: int = -1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", FILL, str(folder), str(log), str(die_after), str(NUM_CLIPS), str(CHUNK_CLIPS)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )


def computed_chunks(log: Path) -> list[int]:
    return [int(line.split()[1]) for line in log.read_text().splitlines()]


def test_a_killed_extraction_resumes_at_the_first_missing_chunk(tmp_path):
    folder, log = tmp_path / "store", tmp_path / "computed"
    killed = start_fill(folder, log, die_after=2)
    assert killed.wait(timeout=120) == -signal.SIGKILL
    assert computed_chunks(log) == [0, 3]
    resumed = start_fill(folder, log)
    assert resumed.wait(timeout=120) == 0 and resumed.stdout.read().strip() == "2"
    assert sorted(computed_chunks(log)) == [0, 3, 6, 9]  # every chunk once, none twice
    assert torch.equal(
        StoredSplit([ChunkStore(folder, ChunkPlan(NUM_CLIPS, CHUNK_CLIPS)).reader()]).stacked()["label"],
        torch.arange(NUM_CLIPS),
    )


def test_two_runs_on_one_store_compute_each_chunk_once_and_both_finish(tmp_path):
    folder, log = tmp_path / "store", tmp_path / "computed"
    first, second = start_fill(folder, log), start_fill(folder, log)
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    counts = [int(first.stdout.read()), int(second.stdout.read())]
    assert sum(counts) == 4 and sorted(computed_chunks(log)) == [0, 3, 6, 9]
    assert torch.equal(
        StoredSplit([ChunkStore(folder, ChunkPlan(NUM_CLIPS, CHUNK_CLIPS)).reader()]).stacked()["label"],
        torch.arange(NUM_CLIPS),
    )


PROBE = [
    "probe=depth",
    "backbone=random",
    *[o for o in ("random_backbone.width=32", "random_backbone.depth=2", "random_backbone.heads=2")],
    "random_backbone.mlp=64",
    "random_backbone.num_frames=4",
    "random_backbone.image_size=32",
    "readout.width=32",
    "readout.heads=2",
    "train.steps=12",
    "train.batch_size=4",
    "train.checkpoint_every=4",
    "probe_data.world.num_frames=4",
    "probe_data.world.size=32",
    "probe_data.splits.train=24",
    "probe_data.splits.val=4",
    "probe_data.splits.test=8",
    "pictures=false",
    "resume=auto",
    "cache_chunk_mb=0.01",  # chunks of 5 clips (2 KB of features each)
]
SAME_IN_EVERY_RUN = ("task", "backbone", "seed", "chosen", "val", "grid", "metrics", "readout_params")


def run_probe(tmp_path: Path, name: str, *extra: str, fault: tuple[str, int] | None = None) -> subprocess.Popen:
    """`python -m fourd.probe` in run directory <tmp>/<name> on a cache shared by every run of the test."""
    overrides = [*PROBE, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / name}"]
    overrides += [f"results={tmp_path / name}.jsonl", *extra]
    command = ["-m", "fourd.probe"]
    if fault is not None:
        command = [str(REPO / "tests" / "helpers" / "fault_injection.py"), fault[0], str(fault[1])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, *command, *overrides],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(tmp_path: Path, name: str) -> dict:
    import json

    lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    return {k: record[k] for k in SAME_IN_EVERY_RUN}


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out + err


@pytest.mark.slow
def test_a_probe_killed_in_extraction_or_training_resumes_to_the_same_result(tmp_path):
    finish(run_probe(tmp_path, "whole"))
    shared = tmp_path / "cache" / "features"
    for path in shared.glob("*"):  # the killed run computes its features anew
        shutil.rmtree(path)
    killed = run_probe(tmp_path, "killed", fault=("die-in-feature-chunk", 3))  # in train's third chunk
    assert killed.wait(timeout=600) == -signal.SIGKILL
    chunks = sorted(shared.glob("*/train/chunk_*.safetensors"))
    assert chunks and not (tmp_path / "killed.jsonl").exists()
    mtimes = {c: c.stat().st_mtime_ns for c in chunks}
    killed = run_probe(tmp_path, "killed", fault=("die-at-probe-step", 10))
    assert killed.wait(timeout=600) == -signal.SIGKILL
    assert {c: c.stat().st_mtime_ns for c in chunks} == mtimes  # no chunk computed twice
    assert (tmp_path / "killed" / "checkpoints" / "last.ckpt").exists()
    err = finish(run_probe(tmp_path, "killed"))
    assert "resuming the readout training from" in err
    assert result(tmp_path, "killed") == result(tmp_path, "whole")


@pytest.mark.slow
def test_two_probes_started_together_share_one_extraction_and_agree(tmp_path):
    first, second = run_probe(tmp_path, "first"), run_probe(tmp_path, "second")
    logs = [finish(first), finish(second)]
    computed = [
        int(m) for log in logs for m in re.findall(r"features of random for train: rank 0 of 1 computed (\d+)", log)
    ]
    assert sum(computed) == len(list((tmp_path / "cache" / "features").glob("*/train/chunk_*.safetensors")))
    assert result(tmp_path, "first") == result(tmp_path, "second")


@pytest.mark.slow
def test_a_probe_stopped_by_sigterm_exits_75_records_nothing_and_resumes(tmp_path):
    stopped = run_probe(tmp_path, "stopped", fault=("term-at-probe-step", 10))
    out, err = stopped.communicate(timeout=600)
    assert stopped.returncode == PREEMPTED_EXIT_CODE, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("stopped by SIGTERM: nothing recorded; run the same command with")
    assert not (tmp_path / "stopped.jsonl").exists()
    assert "resuming the readout training from" in finish(run_probe(tmp_path, "stopped"))
    assert len((tmp_path / "stopped.jsonl").read_text().splitlines()) == 1
