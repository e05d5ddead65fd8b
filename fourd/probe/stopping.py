"""A probe stopped by a signal (SIGTERM from a scheduler, SIGINT from a terminal) ends at once with exit code 75:
nothing is recorded, and the last checkpoint of its readout training is what resume=auto continues from."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """Raised where the signal finds the probe (a BaseException, so no `except Exception` swallows it, and not
    KeyboardInterrupt, which Lightning turns into a quietly finished fit)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


@contextmanager
def stops_on_signals() -> Iterator[None]:
    """Inside the block, SIGTERM and SIGINT raise Stopped; the previous handlers come back after it."""
    previous = {s: signal.signal(s, stop) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
