"""Value types for the argparse CLIs: a number outside its range is one `error: argument --x: ...` line at parse
time, before anything is loaded or computed. `within` is the one interval test, config checks use it too."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(least: int) -> Callable[[str], int]:
    """A whole number >= `least`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} must be >= {least}")
        return value

    return parse


def within(value: float, low: float, high: float, ends: str = "()") -> bool:
    """Whether `value` is a finite number inside (low, high), with "[" or "]" for a closed end."""
    if not math.isfinite(value):
        return False
    above = value >= low if ends[0] == "[" else value > low
    below = value <= high if ends[1] == "]" else value < high
    return above and below


def number_in(low: float, high: float, ends: str = "()") -> Callable[[str], float]:
    """A finite number inside (low, high), with "[" or "]" for a closed end."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not within(value, low, high, ends):
            raise argparse.ArgumentTypeError(f"{value} must be in {ends[0]}{low}, {high}{ends[1]}")
        return value

    return parse
