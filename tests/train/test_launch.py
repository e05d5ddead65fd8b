"""Launch recipes: the SLURM batch script, the torchrun script and the Hydra SLURM sweep launcher."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fourd.conf import compose
from tests.helpers import REPO

SBATCH = REPO / "tools" / "slurm" / "train.sbatch"
TORCHRUN = REPO / "tools" / "torchrun_train.sh"
SUBMITIT_SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"


def fake_command(bin_dir: Path, name: str, log: Path, body: str = "") -> None:
    """An executable `name` that records its arguments, one per line, runs `body` and succeeds."""
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > "{log}"\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def compose_with_hydra(app: str, overrides: list[str]):
    return compose(app, overrides, return_hydra_config=True)


@pytest.mark.parametrize("script", [SBATCH, TORCHRUN])
def test_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0


def test_sbatch_asks_for_the_preemption_signal_and_requeue():
    directives = [line.split()[1] for line in SBATCH.read_text().splitlines() if line.startswith("#SBATCH ")]
    assert "--signal=USR1@120" in directives and "--requeue" in directives and "--open-mode=append" in directives
    assert any(d.startswith("--ntasks-per-node=") for d in directives)
    # every #SBATCH line comes before the first command, or sbatch ignores it
    lines = [line for line in SBATCH.read_text().splitlines()[1:] if line.strip()]
    first_command = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert all(not line.startswith("#SBATCH") for line in lines[first_command:])


def test_sbatch_runs_srun_with_hybrid_fsdp_resume_and_a_fixed_run_dir(tmp_path):
    log = tmp_path / "srun.args"
    fake_command(tmp_path / "bin", "srun", log, body=f'echo "$SRUN_CPUS_PER_TASK" > "{tmp_path / "srun.cpus"}"')
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_NNODES": "3",
        "SLURM_NTASKS_PER_NODE": "8",
        "SLURM_CPUS_PER_TASK": "6",
        "EXP": "vit_e",
    }
    env.pop("RUN_DIR", None)
    proc = subprocess.run(
        ["bash", str(SBATCH), "optimizer.base_lr=1e-4"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    args = log.read_text().splitlines()
    assert args[args.index("-m") + 1] == "fourd.train"
    overrides = args[args.index("-m") + 2 :]
    for expected in (
        "+exp=vit_e",
        "trainer.num_nodes=3",
        "trainer.devices=8",
        "strategy=fsdp",
        "strategy.sharding=hybrid",
        "resume=auto",
        "hydra.run.dir=outputs/vit_e_4242",
        "optimizer.base_lr=1e-4",
    ):
        assert expected in overrides
    cfg = compose_with_hydra("train", overrides)  # the command line is a valid composition
    assert (cfg.trainer.num_nodes, cfg.trainer.devices, cfg.strategy.name, cfg.strategy.sharding) == (
        3,
        8,
        "fsdp",
        "hybrid",
    )
    assert cfg.resume == "auto" and cfg.hydra.run.dir == "outputs/vit_e_4242"
    assert (tmp_path / "srun.cpus").read_text().strip() == "6"  # Slurm 22.05-23.02 srun does not inherit -c


def test_torchrun_script_command(tmp_path):
    log = tmp_path / "torchrun.args"
    fake_command(tmp_path / "bin", "torchrun", log)
    env = {
        **os.environ,
        "TORCHRUN": str(tmp_path / "bin" / "torchrun"),
        "NNODES": "2",
        "NPROC": "4",
        "RDZV": "node0:29500",
        "RUN_DIR": "/shared/vit_g",
    }
    proc = subprocess.run(["bash", str(TORCHRUN), "+exp=vit_g"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    args = log.read_text().splitlines()
    for expected in ("--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d", "--rdzv-endpoint=node0:29500"):
        assert expected in args[: args.index("-m")]
    overrides = args[args.index("-m") + 2 :]
    cfg = compose_with_hydra("train", overrides)
    assert (cfg.trainer.num_nodes, cfg.trainer.devices, cfg.strategy.sharding) == (2, 4, "hybrid")
    assert cfg.resume == "auto" and cfg.hydra.run.dir == "/shared/vit_g"
    unset = {k: v for k, v in env.items() if k != "RUN_DIR"}
    proc = subprocess.run(["bash", str(TORCHRUN)], env=unset, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "RUN_DIR" in proc.stderr


# a torchrun whose ranks save a checkpoint (or not) when stopped, then exit 1 as torchrun does after a signal
STOPPED_TORCHRUN = """trap '{save}exit 1' TERM
touch "$READY"
while true; do sleep 0.1; done"""


@pytest.mark.parametrize("saves, code", [(True, 75), (False, 1)], ids=["saved", "not-saved"])
def test_torchrun_script_exits_75_when_stopped_after_saving(tmp_path, saves, code):
    run_dir, ready = tmp_path / "run", tmp_path / "ready"
    save = f'sleep 1; mkdir -p "{run_dir}/checkpoints"; touch "{run_dir}/checkpoints/step_3.ckpt"; ' if saves else ""
    fake_command(tmp_path / "bin", "torchrun", tmp_path / "args", STOPPED_TORCHRUN.format(save=save))
    env = {**os.environ, "TORCHRUN": str(tmp_path / "bin" / "torchrun"), "NPROC": "2", "RUN_DIR": str(run_dir)}
    proc = subprocess.Popen(["bash", str(TORCHRUN)], env={**env, "READY": str(ready)}, stderr=subprocess.PIPE)
    for _ in range(100):
        if ready.exists():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == code
    assert ("after saving" in proc.stderr.read().decode()) == saves


def test_torchrun_script_counts_the_gpus_torch_sees(tmp_path):
    """No NPROC: the GPUs that torch sees (CUDA_VISIBLE_DEVICES honoured), here none: one error line."""
    fake_command(tmp_path / "bin", "torchrun", tmp_path / "args")
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    env = {**os.environ, "TORCHRUN": str(tmp_path / "bin" / "torchrun"), "RUN_DIR": str(tmp_path / "run")}
    env.pop("NPROC", None)
    proc = subprocess.run(
        ["bash", str(TORCHRUN)], env={**env, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True
    )
    assert proc.returncode == 1 and proc.stderr.strip() == "error: no GPU found: set NPROC"
    assert not (tmp_path / "args").exists()


@pytest.mark.slow
def test_torchrun_script_trains_two_cpu_processes_with_hybrid_fsdp(tmp_path):
    """The real thing on one node: 2 gloo processes, a (1, 2) hybrid mesh, 2-shard checkpoints."""
    run_dir = tmp_path / "run"
    env = {
        **os.environ,
        "NPROC": "2",
        "RDZV": "127.0.0.1:0",
        "RDZV_ID": f"test{os.getpid()}",
        "MAX_RESTARTS": "0",
        "RUN_DIR": str(run_dir),
        "TORCHRUN": str(Path(sys.executable).parent / "torchrun"),
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [
            "bash",
            str(TORCHRUN),
            "+exp=demo",
            "trainer.max_steps=2",
            "data.batch_size=4",
            "data.num_workers=0",
            "data.dataset.num_clips=16",
            "images.every_n_steps=0",
            "checkpoint.every_n_steps=2",
            "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (run_dir / "train.log").read_text()
    assert "mesh (1, 2) (hybrid)" in log
    shards = sorted(p.name for p in run_dir.glob("checkpoints/*.ckpt/*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"]
    assert (run_dir / "encoder.safetensors").is_file()


@pytest.mark.parametrize("app", ["probe", "train"])
def test_slurm_launcher_composes(app):
    cfg = compose_with_hydra(app, ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == SUBMITIT_SLURM
    assert (launcher.partition, launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == ("gpu", 1, 1, 1)
    assert cfg.hydra.runtime.choices["hydra/launcher"] == "slurm"
    assert "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK" in launcher.setup


MULTIRUN = """
import json, runpy, sys
import submitit

def capture(self, fn, *iterables):  # instead of sbatch: record the job script the sweep would submit
    text = self._executor._make_submission_file_text("python -u -m submitit.core._submit FOLDER", "UID")
    json.dump({"overrides": [list(o) for o in iterables[0]], "sbatch": text}, open(OUT, "w"))
    return []

submitit.AutoExecutor.map_array = capture
OUT = sys.argv[1]
sys.argv = ["probe", *sys.argv[2:]]
runpy.run_module("fourd.probe", run_name="__main__", alter_sys=True)
"""


def test_probe_sweep_on_slurm_builds_a_job_array(tmp_path):
    """`python -m fourd.probe -m hydra/launcher=slurm ...` up to the sbatch call (submitit wants an srun on PATH)."""
    log = tmp_path / "never"
    fake_command(tmp_path / "bin", "srun", log)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    result = tmp_path / "submitted.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MULTIRUN,
            str(result),
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.timeout_min=30",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "probe=depth,points",
            "backbone=random",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    submitted = json.loads(result.read_text())
    assert submitted["overrides"] == [["probe=depth", "backbone=random"], ["probe=points", "backbone=random"]]
    sbatch = submitted["sbatch"]
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --time=30",
        "#SBATCH --signal=USR2@120",
        "#SBATCH --job-name=probe",
        "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK",
    ):
        assert line in sbatch
    assert f"{tmp_path / 'sweep'}/.submitit/" in sbatch
    assert not log.exists()
