"""Preemption: SIGTERM / SIGUSR1 finish the current step, save a checkpoint, requeue on SLURM, and stop; SIGINT
(Ctrl-C) does the same without the requeue, and a second SIGINT stops at once.

The signal handler only records the signal. At the end of every step the ranks agree (one tiny
all-reduce) on whether any of them was signalled, so they all save and stop at the same step.
Lightning's own SIGTERM handler (a broadcast from inside the handler) is replaced while training.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

import lightning as L

from fourd.distributed import any_rank
from fourd.train.checkpoints import RollingCheckpoint

log = logging.getLogger(__name__)
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def slurm_job_id() -> str | None:
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ.get("SLURM_JOB_ID")


def requeue_slurm_job(job_id: str) -> None:
    result = subprocess.run(["scontrol", "requeue", job_id], capture_output=True, text=True)
    if result.returncode == 0:
        log.info(f"requeued SLURM job {job_id}")
    else:
        log.warning(f"`scontrol requeue {job_id}` failed ({result.returncode}): {result.stderr.strip()}")


class Preemption(L.Callback):
    """Turns a preemption signal into: checkpoint at the end of this step, requeue (SLURM), stop cleanly."""

    def __init__(
        self, checkpoint: RollingCheckpoint | None, signals: Sequence[signal.Signals] = PREEMPTION_SIGNALS
    ) -> None:
        self.checkpoint = checkpoint
        self.signals = tuple(signals)
        self.received: int | None = None
        self.preempted = False
        self._previous: dict[int, Any] = {}

    def _record(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: no checkpoint wanted
        self.received = signum

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: preemption signals are not handled")
            return
        for signum in self.signals:  # after Lightning registered its handlers, so ours replace them
            self._previous[signum] = signal.signal(signum, self._record)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not any_rank(self.received is not None, pl_module.device):
            return
        self.preempted = True
        name = signal.Signals(self.received).name if self.received else "a signal on another rank"
        log.warning(f"rank {trainer.global_rank}: {name} received; stopping after step {trainer.global_step}")
        if self.checkpoint is not None:
            path = self.checkpoint.save(trainer)
            log.warning(f"preemption checkpoint: {path}")
        job = slurm_job_id()
        if trainer.is_global_zero and job is not None and self.received != signal.SIGINT:
            requeue_slurm_job(job)
        trainer.should_stop = True

    @staticmethod
    def stopped(trainer: L.Trainer) -> bool:
        """Whether this trainer's run was stopped by a preemption signal."""
        return any(isinstance(c, Preemption) and c.preempted for c in trainer.callbacks)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
