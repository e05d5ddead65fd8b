"""`python tests/helpers/fault_injection.py die-in-checkpoint-write N [train overrides...]`: pretraining whose process
dies (SIGKILL) half-way through writing its N-th checkpoint file, as a node losing power would."""

from __future__ import annotations

import os
import signal
import sys

from fourd.train.__main__ import main
from fourd.train.checkpoints import DirectCheckpointIO


def die_in_checkpoint_write(n: int) -> None:
    original = DirectCheckpointIO.save_checkpoint
    calls = 0

    def save_then_die(self, checkpoint, path, storage_options=None):
        nonlocal calls
        calls += 1
        original(self, checkpoint, path, storage_options)
        if calls == n:
            with open(path, "r+b") as file:
                file.truncate(os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    DirectCheckpointIO.save_checkpoint = save_then_die


if __name__ == "__main__":
    fault, count, *overrides = sys.argv[1:]
    if fault != "die-in-checkpoint-write":
        raise SystemExit(f"unknown fault {fault!r}")
    die_in_checkpoint_write(int(count))
    sys.argv = [sys.argv[0], *overrides]
    main()
