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
