"""Atomic rolling checkpoints: `step_<N>.ckpt` is written under a temporary name, renamed when complete,
and only the newest k are kept. A checkpoint is a file, or under FSDP a directory of DCP shards.

A process killed mid-write leaves a `.tmp-*` entry that is ignored (and cleaned up), never a broken
checkpoint under a real name, so `resume=auto` always finds the newest complete one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

import lightning as L

log = logging.getLogger(__name__)
CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.ckpt$")
TEMPORARY_PREFIX = ".tmp-"
DCP_METADATA = ".metadata"  # written last by torch.distributed.checkpoint


def checkpoint_name(step: int) -> str:
    return f"step_{step:09d}.ckpt"


def is_complete(path: Path) -> bool:
    """A renamed file is complete by construction; a DCP directory also needs its `.metadata` (written last)."""
    return path.is_file() or (path.is_dir() and (path / DCP_METADATA).is_file())


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_NAME.match(path.name)
        if match and is_complete(path):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def commit(temporary: Path, final: Path) -> None:
    """Rename a finished checkpoint into place (atomic for files and directories) and make it durable."""
    if final.exists():  # the same step saved again, e.g. after a resume: move the old one out of the way first
        stale = final.with_name(TEMPORARY_PREFIX + "old-" + final.name)
        remove_path(stale)
        os.replace(final, stale)
        os.replace(temporary, final)
        remove_path(stale)
    else:
        os.replace(temporary, final)
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RollingCheckpoint(L.Callback):
    """Every N optimizer steps (and at the end of training) saves `step_<N>.ckpt` atomically, keeping the last k."""

    def __init__(self, dirpath: str | Path, every_n_steps: int = 1000, keep_last: int = 3) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.keep_last = keep_last
        self.saved_step = -1

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and self.dirpath.is_dir():
            for stale in self.dirpath.glob(TEMPORARY_PREFIX + "*"):
                log.warning(f"removing {stale}, left by a run killed while writing it")
                remove_path(stale)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if any(step == trainer.global_step for step, _ in list_checkpoints(self.dirpath)):
            self.saved_step = trainer.global_step  # resumed from it: nothing new to save yet

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def save(self, trainer: L.Trainer) -> Path:
        """Write the checkpoint of the current step (a collective: every rank calls it)."""
        final = self.dirpath / checkpoint_name(trainer.global_step)
        if trainer.global_step == self.saved_step:
            return final
        temporary = final.with_name(TEMPORARY_PREFIX + final.name)
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            remove_path(temporary)
        trainer.strategy.barrier("fourd.weights.start")
        trainer.save_checkpoint(temporary, weights_only=False)  # the full training state
        if trainer.is_global_zero:
            commit(temporary, final)
            self.prune()
            log.info(f"saved {final}")
        trainer.strategy.barrier("fourd.weights.end")
        self.saved_step = trainer.global_step
        return final

    def prune(self) -> None:
        if self.keep_last <= 0:
            return
        for _, path in list_checkpoints(self.dirpath)[: -self.keep_last]:
            remove_path(path)
