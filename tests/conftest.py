"""Session fixtures and rules: the official JAX fixtures (a test fails, never skips, without them), a fixed seed per
test, and the one rule on skips: only a test that needs what this machine lacks by design may skip (marked `gpu`,
or `needs_package` for a package pyproject.toml installs only on some platforms). Any other skip fails, so that a
missing file or package can never hide as a skip, in CI or on a user's clone alike."""

from __future__ import annotations

import functools
import importlib.metadata
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import FIXTURES, fixtures_problem

ONLY = "only tests marked gpu, or needs_package for a package not installed on this platform, may skip"


@functools.cache
def installed_here(package: str) -> bool:
    """Whether `pip install -e .[dev]` (tools/setup_env.sh) installs `package` on this platform: its environment
    marker in pyproject.toml, read from fourd's installed metadata."""
    requirements = [Requirement(line) for line in importlib.metadata.requires("fourd") or []]
    found = [r for r in requirements if canonicalize_name(r.name) == canonicalize_name(package)]
    if not found:
        raise ValueError(f"needs_package({package!r}): fourd does not require {package}")
    return any(r.marker is None or r.marker.evaluate({"extra": "dev"}) for r in found)


def may_skip(item: pytest.Item) -> bool:
    needs = [marker.args[0] for marker in item.iter_markers("needs_package")]
    return item.get_closest_marker("gpu") is not None or not all(installed_here(p) for p in needs)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for package in [marker.args[0] for marker in item.iter_markers("needs_package")]:
            if not installed_here(package):
                item.add_marker(pytest.mark.skip(reason=f"pyproject.toml does not install {package} on this platform"))


def fail_a_skip(item: pytest.Item):
    """Run the wrapped hook; a skip in it fails the test, with the skip's reason, unless the test may skip."""
    try:
        return (yield)
    except pytest.skip.Exception as skip:
        if may_skip(item):
            raise
        reason = skip.msg
    pytest.fail(f"skipped ({reason}), but {ONLY}", pytrace=False)  # outside the except: no chained traceback


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    return (yield from fail_a_skip(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from fail_a_skip(item))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A module that skips itself (pytest.importorskip at its top) is an error."""
    report = yield
    if report.skipped:
        reason = report.longrepr[2].removeprefix("Skipped: ") if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome, report.longrepr = "failed", f"{collector.nodeid}: skipped ({reason}), but {ONLY}"
    return report


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The official fixtures (tests/fixtures, or FOURD_FIXTURES), every file of their SHA256SUMS there and unchanged."""
    problem = fixtures_problem(FIXTURES)
    if problem:
        pytest.fail(f"official fixtures at {FIXTURES}: {problem} (see tests/fixtures/README.md)", pytrace=False)
    return FIXTURES


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
