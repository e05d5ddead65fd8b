"""One run per run directory: a second fourd.train into a held directory, a fresh run into another run's folder
and a resumed run with another model stop at once and change nothing."""

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from fourd.errors import ConfigError
from fourd.train.rundir import CONFIG_RECORD, check_run_dir, locked_run_dir, record_config
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


@pytest.mark.parametrize("held", ["checkpoints/step_000000012.ckpt", "encoder.safetensors"])
def test_a_fresh_run_into_another_runs_folder_is_refused(tmp_path, held):
    (tmp_path / held).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / held).write_bytes(b"")
    with pytest.raises(ConfigError, match=rf"holds another run \({held.split('/')[-1]}\): resume it with resume=auto"):
        check_run_dir(tmp_path, composed("train", "+exp=demo"))
    check_run_dir(tmp_path, composed("train", "+exp=demo", "resume=auto"))  # continuing it is what the folder is for


def test_resuming_with_another_model_is_refused_naming_the_keys(tmp_path):
    record_config(tmp_path, composed("train", "+exp=demo"), None)
    check_run_dir(tmp_path, composed("train", "+exp=demo", "resume=auto", "optimizer.base_lr=1e-3"))  # may change
    with pytest.raises(ConfigError) as error:
        check_run_dir(tmp_path, composed("train", "+exp=demo", "resume=auto", "model.width=64", "model.heads=2"))
    message = str(error.value)
    assert "model.heads=2 (recorded 4), model.width=64 (recorded 128)" in message, message
    check_run_dir(tmp_path / "new", composed("train", "+exp=demo", "resume=auto", "model.width=64"))  # nothing recorded


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.base_lr=-1", "optimizer.base_lr=-1 must be a positive number"),
        ("model.width=64", "resume=auto: the model differs"),
    ],
)
def test_a_refused_run_leaves_the_folders_record(tmp_path, override, message):
    record_config(tmp_path, composed("train", "+exp=demo", "seed=7"), None)
    cmd = [sys.executable, "-m", "fourd.train", "+exp=demo", "dry_run=true", f"hydra.run.dir={tmp_path}", "seed=9"]
    proc = subprocess.run([*cmd, "resume=auto", override], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].startswith("error: "), proc.stderr[-2000:]
    assert message in proc.stderr.strip().splitlines()[-1]
    assert OmegaConf.load(tmp_path / CONFIG_RECORD / "config.yaml").seed == 7
    assert not (tmp_path / CONFIG_RECORD / "overrides.yaml").exists()
