"""A plain (non-editable) install works from any directory: the configs ship inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import REPO


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv holding a wheel of this checkout; the test environment's packages serve its dependencies."""
    root = tmp_path_factory.mktemp("install")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(root / "dist"),
            str(REPO),
        ],
        root,
    )
    (wheel,) = (root / "dist").glob("fourd-*.whl")
    run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], root)
    python = root / "venv" / "bin" / "python"
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root).stdout.strip()
    )
    run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        root,
    )
    # the dependencies (torch, lightning, ...) from this environment; its editable fourd is not on that path
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.slow
def test_the_wheel_holds_fourd_and_its_configs(installed, tmp_path):
    where = run(
        [str(installed), "-c", "import fourd, fourd.conf; print(fourd.__file__); print(fourd.conf.CONFIG_DIR)"],
        tmp_path,
    ).stdout.split()
    assert all(REPO not in Path(p).parents for p in where), where  # the installed copy, not this checkout
    assert (Path(where[1]) / "train.yaml").is_file() and (Path(where[1]) / "exp" / "vit_g.yaml").is_file()


@pytest.mark.slow
def test_train_and_probe_run_from_an_unrelated_directory(installed, tmp_path):
    run(
        [
            str(installed),
            "-m",
            "fourd.train",
            "+exp=demo",
            "trainer.max_steps=2",
            f"hydra.run.dir={tmp_path / 'x'}",
            "data.num_workers=0",
            "data.batch_size=4",
        ],
        tmp_path,
    )
    assert (tmp_path / "x" / "encoder.safetensors").is_file()
    small_world = [
        "probe_data.splits.train=16",
        "probe_data.splits.val=2",
        "probe_data.splits.test=8",
        "probe_data.world.num_points=8",
        "train.batch_size=4",
    ]
    run(
        [
            str(installed),
            "-m",
            "fourd.probe",
            "probe=depth",
            "backbone=random",
            "train.steps=2",
            *small_world,
            f"hydra.run.dir={tmp_path / 'probe'}",
        ],
        tmp_path,
    )
    assert "abs_rel" in (tmp_path / "outputs" / "probe_results.jsonl").read_text()
