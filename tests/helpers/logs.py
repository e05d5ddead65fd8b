"""What a training run logged, read back from its CSV logs."""

from __future__ import annotations

import csv
from pathlib import Path


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
