"""One pretraining run per run directory: a lock held while training, a check that the folder holds no other
run, then the run's config recorded.

Hydra's own config record (`hydra.output_subdir`) is off in train.yaml, because Hydra writes it before the
task starts, i.e. before a run into the wrong directory could be refused; fourd writes the same three files
(`.hydra/config.yaml`, `hydra.yaml`, `overrides.yaml`) once the lock is held and the run is built.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from fourd.errors import ConfigError, FourdError
from fourd.files import atomic_write
from fourd.train.checkpoints import CHECKPOINTS, NO_RESUME, list_checkpoints

LOCK_NAME = ".lock"
CONFIG_RECORD = ".hydra"
ENCODER_FILE = "encoder.safetensors"


class RunDirBusyError(FourdError):
    """Another run is training in this run directory."""


@contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir/.lock` on the global rank 0 process (other ranks share rank 0's run); raise RunDirBusyError
    if another process holds it. A POSIX record lock: released when the process ends however it ends, and not
    inherited by forked data workers, which may outlive a killed run for a moment."""
    if rank_zero_only.rank != 0:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    with open(path, "a+") as lock:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: held by another process
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise RunDirBusyError(
                f"{run_dir} is in use by another fourd.train run ({holder}): wait for it to end, or choose "
                "another hydra.run.dir"
            ) from None
        lock.truncate(0)
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)  # the file stays (removing it would race with a run that opened it meanwhile)


def record_config(run_dir: Path, cfg: DictConfig, hydra_cfg: DictConfig | None) -> None:
    """Write the run's config (and Hydra's, with the command-line overrides) under `run_dir/.hydra/`."""
    if rank_zero_only.rank != 0:
        return
    records = {"config.yaml": cfg}
    if hydra_cfg is not None:
        records |= {"hydra.yaml": OmegaConf.create({"hydra": hydra_cfg}), "overrides.yaml": hydra_cfg.overrides.task}
    for name, config in records.items():
        atomic_write(run_dir / CONFIG_RECORD / name, lambda tmp, config=config: OmegaConf.save(config, tmp))


def check_run_dir(run_dir: Path, cfg: DictConfig) -> None:
    """Refuse a fresh run into a folder that holds another run's checkpoints or encoder, and a resumed one whose
    model differs from the model recorded in the folder (ConfigError naming what is there, or the keys)."""
    if cfg.resume in NO_RESUME:
        held = [path.name for _, path in list_checkpoints(run_dir / CHECKPOINTS)[-1:]]
        held += [ENCODER_FILE] * (run_dir / ENCODER_FILE).exists()
        if held:
            raise ConfigError(
                f"{run_dir} holds another run ({', '.join(held)}): resume it with resume=auto, or choose another "
                "hydra.run.dir"
            )
        return
    record = run_dir / CONFIG_RECORD / "config.yaml"
    if cfg.resume != "auto" or not record.is_file():
        return
    recorded = _leaves(OmegaConf.to_container(OmegaConf.load(record).get("model", {}), resolve=True))
    asked = _leaves(OmegaConf.to_container(cfg.model, resolve=True))
    changed = [
        f"model.{key}={asked.get(key)} (recorded {recorded.get(key)})"
        for key in sorted(asked.keys() | recorded.keys())
        if asked.get(key) != recorded.get(key)
    ]
    if changed:
        raise ConfigError(
            f"resume=auto: the model differs from the one {run_dir}'s checkpoints were made with ({record}): "
            f"{', '.join(changed)}; choose another hydra.run.dir for a new model"
        )


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """The leaves of a nested dict by dotted key."""
    leaves = {}
    for key, value in tree.items():
        leaves |= _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return leaves
