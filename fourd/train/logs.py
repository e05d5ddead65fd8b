"""Training logs: TensorBoard plus one CSV per attempt (a resumed run adds `csv/version_<k>/`, never overwrites)."""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger


def training_loggers(run_dir: Path, flush_every_n_steps: int) -> list[Logger]:
    """TensorBoard appends event files; CSV rows reach the disk every `flush_every_n_steps` logged steps."""
    return [
        TensorBoardLogger(run_dir, name="tensorboard", version=""),
        CSVLogger(run_dir, name="csv", flush_logs_every_n_steps=flush_every_n_steps),
    ]
