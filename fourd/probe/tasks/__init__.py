"""4D probe tasks: queries, heads, losses and metrics on the shared attention readout."""

from __future__ import annotations

from typing import Any

from fourd.errors import ConfigError
from fourd.probe.tasks.base import ClipGeometry, ProbeTask
from fourd.probe.tasks.boxes import BoxTrackingTask
from fourd.probe.tasks.classification import ClassificationTask
from fourd.probe.tasks.depth import DepthTask
from fourd.probe.tasks.paper import PaperBoxTrackingTask, PaperPointTrackingTask
from fourd.probe.tasks.points import PointTrackingTask
from fourd.probe.tasks.pose import CameraPoseTask

TASKS: dict[str, type[ProbeTask]] = {
    "depth": DepthTask,
    "points": PointTrackingTask,
    "boxes": BoxTrackingTask,
    "pose": CameraPoseTask,
    "classification": ClassificationTask,
}


PAPER_TASKS: dict[str, type[ProbeTask]] = {"points": PaperPointTrackingTask, "boxes": PaperBoxTrackingTask}
READOUTS = {"fourd": TASKS, "paper": PAPER_TASKS}


def build_task(
    name: str, geometry: ClipGeometry, readout_width: int, readout: str = "fourd", **options: Any
) -> ProbeTask:
    """A task by name, with fourd's readout or the paper's (`readout`), sized for the clips described by `geometry`."""
    if readout not in READOUTS:
        raise ConfigError(f"unknown readout style {readout!r}; choose one of {', '.join(READOUTS)}")
    if name not in TASKS:
        raise ConfigError(f"unknown probe task {name!r}; choose one of {', '.join(TASKS)}")
    tasks = READOUTS[readout]
    if name not in tasks:
        raise ConfigError(f"probe task {name!r} has no {readout} readout; it has one for {', '.join(tasks)}")
    return tasks[name](geometry, readout_width, **options)


__all__ = ["PAPER_TASKS", "TASKS", "ClipGeometry", "ProbeTask", "build_task"]
