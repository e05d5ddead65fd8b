"""One run per run directory: a second fourd.train into a held directory stops at once and changes nothing."""

import os
import subprocess
import sys

from omegaconf import OmegaConf

from fourd.train.rundir import CONFIG_RECORD, locked_run_dir, record_config
from tests.helpers import REPO
from tests.helpers.configs import composed


def test_a_second_run_into_a_held_directory_stops_and_leaves_the_first_ones_files(tmp_path):
    first = composed("train", "+exp=demo", "seed=7")
    env = {k: v for k, v in os.environ.items() if k not in ("FOURD_TRACEBACK", "HYDRA_FULL_ERROR")}
    cmd = [sys.executable, "-m", "fourd.train", "+exp=demo", "dry_run=true", f"hydra.run.dir={tmp_path}", "seed=9"]
    with locked_run_dir(tmp_path):
        record_config(tmp_path, first, None)
        (tmp_path / "checkpoints").mkdir()
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {tmp_path} is in use by another fourd.train run (pid {os.getpid()} on ")
        assert OmegaConf.load(tmp_path / CONFIG_RECORD / "config.yaml").seed == 7  # not overwritten
        assert not any((tmp_path / "checkpoints").iterdir())
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # released
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = tmp_path / CONFIG_RECORD
    assert OmegaConf.load(record / "config.yaml").seed == 9
    assert OmegaConf.load(record / "overrides.yaml")[-1] == "seed=9"
    assert OmegaConf.load(record / "hydra.yaml").hydra.job.name == "train"
