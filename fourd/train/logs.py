"""Training logs: TensorBoard plus one CSV per attempt (a resumed run adds `csv/version_<k>/`, never overwrites)."""

from __future__ import annotations

import csv
from pathlib import Path

from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger


def training_loggers(run_dir: Path, flush_every_n_steps: int) -> list[Logger]:
    """TensorBoard appends event files; CSV rows reach the disk every `flush_every_n_steps` logged steps."""
    return [
        TensorBoardLogger(run_dir, name="tensorboard", version=""),
        CSVLogger(run_dir, name="csv", flush_logs_every_n_steps=flush_every_n_steps),
    ]


def read_metric(run_dir: str | Path, key: str) -> dict[int, float]:
    """{step: value} of one logged metric over every attempt of a run; a later attempt wins on repeated steps."""
    values: dict[int, float] = {}
    files = sorted(
        (Path(run_dir) / "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.removeprefix("version_"))
    )
    for path in files:
        with open(path, newline="") as file:
            for row in csv.DictReader(file):
                if row.get(key):
                    values[int(row["step"])] = float(row[key])
    return values
