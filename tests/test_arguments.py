"""The CLIs' number arguments: a value outside its range is one `error: argument --x:` line at parse time."""

import argparse
import math
import subprocess
import sys

import pytest

from fourd.arguments import number_in, whole_number
from tests.helpers import REPO


def test_whole_numbers_below_their_least_or_not_whole_are_refused():
    parse = whole_number(1)
    assert parse("3") == 3 and parse("1") == 1
    for text, reason in [("0", "0 must be >= 1"), ("-2", "-2 must be >= 1"), ("2.5", "'2.5' is not a whole number")]:
        with pytest.raises(argparse.ArgumentTypeError, match=f"^{reason}$"):
            parse(text)


def test_numbers_outside_their_interval_or_not_finite_are_refused():
    ratio, memory = number_in(0, 1, "[)"), number_in(0, math.inf)
    assert ratio("0") == 0.0 and memory("80") == 80.0
    for parse, text in [(ratio, "1"), (ratio, "-0.1"), (memory, "0"), (memory, "nan"), (memory, "inf")]:
        with pytest.raises(argparse.ArgumentTypeError, match="must be in"):
            parse(text)
    with pytest.raises(argparse.ArgumentTypeError, match="'abc' is not a number"):
        memory("abc")


@pytest.mark.parametrize(
    "command, last_line",
    [
        (["-m", "fourd.plan", "+exp=demo", "--gpu-mem", "nan"], "error: argument --gpu-mem: nan must be in (0, inf)"),
        (["-m", "fourd.models", "--mask-ratio", "1.5"], "error: argument --mask-ratio: 1.5 must be in [0, 1)"),
        (
            ["-m", "fourd.world", "--out", "w", "--num", "2", "--frames", "0"],
            "error: argument --frames: 0 must be >= 1",
        ),
        (["tools/bench.py", "--warmup", "-5"], "error: argument --warmup: -5 must be >= 0"),
        (["tools/bench.py", "--device", "banana"], "error: unknown device 'banana'; choose auto, cpu, gpu"),
        (["-m", "fourd.report", "--results", "tests"], "error: --results tests is a folder: name the .jsonl file"),
    ],
)
def test_a_cli_names_a_number_out_of_range_in_one_line(command, last_line):
    proc = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (1, 2) and not proc.stdout
    assert last_line in proc.stderr.strip().splitlines()[-1] and "Traceback" not in proc.stderr, proc.stderr
