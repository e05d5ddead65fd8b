"""4D probe tasks: queries, heads, losses and metrics on the shared attention readout."""

from __future__ import annotations

from typing import Any

from fourd.errors import ConfigError
from fourd.probe.tasks.base import ClipGeometry, ProbeTask
from fourd.probe.tasks.boxes import BoxTrackingTask
from fourd.probe.tasks.classification import ClassificationTask
from fourd.probe.tasks.depth import DepthTask
from fourd.probe.tasks.points import PointTrackingTask
from fourd.probe.tasks.pose import CameraPoseTask

TASKS: dict[str, type[ProbeTask]] = {
    "depth": DepthTask,
    "points": PointTrackingTask,
    "boxes": BoxTrackingTask,
    "pose": CameraPoseTask,
    "classification": ClassificationTask,
}


def build_task(name: str, geometry: ClipGeometry, readout_width: int, **options: Any) -> ProbeTask:
    """A task by name, sized for the clips described by `geometry`."""
    if name not in TASKS:
        raise ConfigError(f"unknown probe task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name](geometry, readout_width, **options)


__all__ = ["TASKS", "ClipGeometry", "ProbeTask", "build_task"]
