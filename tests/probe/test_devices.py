"""Probes on several processes (torchrun, 2 gloo ranks on CPU): each chunk of features is computed once, the heads
train data-parallel, and val/test metrics gathered over every rank match one process's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.probe.test_store import PROBE

HEADLINE = {"depth": "abs_rel", "points": "average_jaccard"}


def probe_command(tmp_path: Path, task: str, name: str, processes: int) -> list[str]:
    overrides = [o for o in PROBE if not o.startswith(("probe=", "resume="))]
    overrides += [f"probe={task}", f"cache_dir={tmp_path / name / 'cache'}", f"hydra.run.dir={tmp_path / name}"]
    overrides += [f"results={tmp_path / name}.jsonl", "accelerator=cpu", f"devices={processes}", "train.batch_size=8"]
    if processes == 1:
        return [sys.executable, "-m", "fourd.probe", *overrides]
    torchrun = Path(sys.executable).parent / "torchrun"
    return [
        str(torchrun),
        f"--nproc_per_node={processes}",
        "--standalone",
        "-m",
        "fourd.probe",
        *overrides,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["depth", "points"])
def test_two_processes_probe_like_one(tmp_path, task):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    results = {}
    for processes in (1, 2):
        name = f"p{processes}"
        proc = subprocess.run(
            probe_command(tmp_path, task, name, processes),
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        lines = (tmp_path / f"{name}.jsonl").read_text().splitlines()
        assert len(lines) == 1  # one results line, from rank 0
        results[processes] = json.loads(lines[0])["metrics"]
        if processes == 2:
            log = (tmp_path / name / "probe.log").read_text()
            computed = {
                int(r): int(n)
                for r, n in re.findall(r"features of random for train: rank (\d) of 2 computed (\d+)", log)
            }
            chunks = list((tmp_path / name / "cache" / "features").glob("*/train/chunk_*.safetensors"))
            assert set(computed) == {0, 1} and sum(computed.values()) == len(chunks)  # each chunk once, over both
    metric = HEADLINE[task]
    assert results[2][metric] == pytest.approx(results[1][metric], abs=0.01)


@pytest.mark.slow
def test_a_backbone_sharded_over_two_processes_probes_like_one_unsharded(tmp_path):
    """shard_backbone=true: each rank holds half the encoder, and every forward runs on both ranks together, also
    where one rank has more chunks (5 train chunks) or more test batches (9 test clips in batches of 4) than the
    other; the metrics are one unsharded process's (up to float sums in other batch sizes), from cached features
    and from features on the fly."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    uneven = ["probe_data.splits.test=9", "train.batch_size=4"]
    runs = {
        "one": probe_command(tmp_path, "depth", "one", 1),
        "cached": probe_command(tmp_path, "depth", "cached", 2) + ["shard_backbone=true"],
        "fly": probe_command(tmp_path, "depth", "fly", 2) + ["shard_backbone=true", "cache_features=false"],
    }
    results = {}
    for name, command in runs.items():
        command = [c for c in command if not c.startswith("train.batch_size=")] + uneven
        if name == "fly":
            command.append("pictures=true")  # the picture's features are a forward of both ranks too
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results[name] = json.loads((tmp_path / f"{name}.jsonl").read_text())["metrics"]
        if name != "one":
            held = re.findall(r"rank (\d) holds (\d+) of (\d+) parameters", (tmp_path / name / "probe.log").read_text())
            assert sorted(r for r, _, _ in held) == ["0", "1"]
            assert all(2 * int(part) == int(whole) for _, part, whole in held)
    assert (tmp_path / "fly" / "depth.png").exists()
    for name in ("cached", "fly"):
        assert results[name]["abs_rel"] == pytest.approx(results["one"]["abs_rel"], abs=1e-4)
