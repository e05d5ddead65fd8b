"""`python tests/helpers/fault_injection.py FAULT N [overrides...]`, a process that dies (SIGKILL), as a node losing
power would: `die-in-checkpoint-write` (pretraining, half-way through writing its N-th checkpoint file),
`die-in-feature-chunk` (a probe, while computing its N-th feature chunk), `die-at-probe-step` (a probe, in readout
training step N); or one stopped by a scheduler: `term-at-probe-step` (SIGTERM in readout training step N)."""

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


def die_in_feature_chunk(n: int) -> None:
    from fourd.probe import features

    original = features.compute_features
    calls = 0

    def compute_then_die(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    features.compute_features = compute_then_die


def signal_at_probe_step(n: int, signum: int) -> None:
    from fourd.probe.module import ProbeModule

    original = ProbeModule.training_step

    def step_then_signal(self, batch, batch_idx):
        if self.trainer.global_step + 1 == n:
            os.kill(os.getpid(), signum)
        return original(self, batch, batch_idx)

    ProbeModule.training_step = step_then_signal


FAULTS = {
    "die-in-checkpoint-write": die_in_checkpoint_write,
    "die-in-feature-chunk": die_in_feature_chunk,
    "die-at-probe-step": lambda n: signal_at_probe_step(n, signal.SIGKILL),
    "term-at-probe-step": lambda n: signal_at_probe_step(n, signal.SIGTERM),
}

if __name__ == "__main__":
    fault, count, *overrides = sys.argv[1:]
    if fault not in FAULTS:
        raise SystemExit(f"unknown fault {fault!r}")
    FAULTS[fault](int(count))
    sys.argv = [sys.argv[0], *overrides]
    if fault == "die-in-checkpoint-write":
        main()
    else:
        from fourd.probe.__main__ import main as probe_main

        probe_main()
