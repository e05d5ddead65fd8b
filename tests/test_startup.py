"""`import fourd` and every entry point's `--help` import neither torch, Lightning, timm nor matplotlib: the heavy
imports come after the arguments are parsed, so a command answers `--help` (or a typo) at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fourd
from tests.helpers import REPO

HEAVY = ("lightning", "matplotlib", "timm", "torch")
PACKAGE = Path(fourd.__file__).parent
ENTRY_POINTS = sorted(
    [f"fourd.{p.stem}" for p in PACKAGE.glob("*.py") if 'if __name__ == "__main__":' in p.read_text()]
    + [f"fourd.{p.parent.name}" for p in PACKAGE.glob("*/__main__.py")]
)
HELP = """
import runpy, sys
sys.argv = [{module!r}, "--help"]
try:
    runpy.run_module({module!r}, run_name="__main__", alter_sys=True)  # as `python -m {module} --help`
except SystemExit:
    pass
"""


def heavy_imports(code: str) -> tuple[list[str], str]:
    """The HEAVY modules a fresh interpreter holds after running `code`, and what `code` printed."""
    report = f"\nimport sys\nprint('heavy:', *sorted(m for m in {HEAVY!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code + report], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    *printed, last = proc.stdout.splitlines()
    return last.split()[1:], "\n".join(printed)


def test_the_entry_points_are_found():
    assert {"fourd.convert", "fourd.report", "fourd.train", "fourd.probe", "fourd.models"} <= set(ENTRY_POINTS)


def test_import_fourd_is_light_and_fourd_load_still_works():
    assert heavy_imports("import fourd")[0] == []
    assert "torch" in heavy_imports("import fourd; fourd.load")[0]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_imports_no_heavy_module(module):
    heavy, printed = heavy_imports(HELP.format(module=module))
    assert "usage:" in printed.lower() or "powered by hydra" in printed.lower(), printed
    assert heavy == []


def test_bench_help_imports_no_heavy_module():
    code = "import runpy, sys\nsys.argv = ['tools/bench.py', '--help']\ntry:\n"
    code += "    runpy.run_path('tools/bench.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    heavy, printed = heavy_imports(code)
    assert "usage:" in printed and heavy == []
