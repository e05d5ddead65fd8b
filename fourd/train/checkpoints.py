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
import zipfile
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO

from fourd.errors import one_line
from fourd.files import space_checked

log = logging.getLogger(__name__)
CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.ckpt$")
TEMPORARY_PREFIX = ".tmp-"
DCP_METADATA = ".metadata"  # written last by torch.distributed.checkpoint
CHECKPOINTS = "checkpoints"  # the run directory's folder of them
NO_RESUME = (None, "", "none")  # the `resume` settings that start a fresh run


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


def checkpoint_damage(path: Path) -> str | None:
    """Why a checkpoint cannot be loaded, or None if it reads: a file must be a zip archive (torch.save) whose
    members all pass their CRC; a sharded one needs readable metadata and every shard file at full length."""
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError) as err:
            return f"not a torch.save archive ({one_line(err)})"
        return f"member {bad} fails its CRC check" if bad else None
    if not (path / DCP_METADATA).is_file():
        return f"no {DCP_METADATA}: not a checkpoint, or one whose writing never finished"
    from torch.distributed.checkpoint import FileSystemReader

    try:
        storage = FileSystemReader(str(path)).read_metadata().storage_data
    except Exception as err:  # a damaged pickle can raise nearly anything
        return f"unreadable {DCP_METADATA} ({one_line(err)})"
    needed: dict[str, int] = {}
    for info in storage.values():
        needed[info.relative_path] = max(needed.get(info.relative_path, 0), info.offset + info.length)
    for name, length in sorted(needed.items()):
        shard = path / name
        if not shard.is_file() or shard.stat().st_size < length:
            return f"shard {name} is missing or shorter than its {length} bytes"
    return None


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


class DirectCheckpointIO(TorchCheckpointIO):
    """torch.save straight into the path it is given, then fsync. RollingCheckpoint gives it a temporary name
    beside the destination and renames it when complete, so Lightning's own atomic save (the whole checkpoint
    in memory, then staged in the system temp folder, which must hold it) is not needed."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())


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
        try:
            with space_checked(final):
                trainer.save_checkpoint(temporary, weights_only=False)  # the full training state
        except Exception:
            if trainer.is_global_zero:
                remove_path(temporary)  # a partial checkpoint is never left behind
            raise
        if trainer.is_global_zero:
            commit(temporary, final)
            self.prune(trainer.global_step)
            log.info(f"saved {final}")
        trainer.strategy.barrier("fourd.weights.end")
        self.saved_step = trainer.global_step
        return final

    def prune(self, step: int) -> None:
        """Keep the newest `keep_last` checkpoints up to `step`; later ones (left by an attempt that resumed from
        an earlier step, e.g. past a damaged checkpoint) are neither counted nor removed: saving their step
        again replaces them."""
        if self.keep_last <= 0:
            return
        for _, path in [(s, p) for s, p in list_checkpoints(self.dirpath) if s <= step][: -self.keep_last]:
            remove_path(path)
