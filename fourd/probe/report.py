"""Probe results (JSON lines) as a markdown table and a scaling plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)

from fourd.files import atomic_write  # noqa: E402

# task -> (metric, higher is better) shown in the table and the plot; all metrics stay in the JSON lines
HEADLINE = {
    "depth": [("abs_rel", False), ("delta1", True)],
    "points": [("average_jaccard", True), ("occlusion_accuracy", True)],
    "boxes": [("mean_iou", True)],
    "pose": [("rotation_error_deg", False), ("end_point_error", False)],
    "classification": [("top1", True)],
}


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """JSON lines of probe results; the newest line wins for each (task, backbone)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            latest[(record["task"], record["backbone"])] = record
    if not latest:
        raise ValueError(f"no results in {path}")
    return list(latest.values())


def markdown_table(records: list[dict[str, Any]]) -> str:
    """One row per backbone, one column per headline metric of each task that has results."""
    tasks = [t for t in HEADLINE if any(r["task"] == t for r in records)]
    columns = [(t, m, up) for t in tasks for m, up in HEADLINE[t]]
    backbones = sorted({(r["backbone_params"], r["backbone"]) for r in records})
    header = ["backbone", "params"] + [f"{t} {m} {'↑' if up else '↓'}" for t, m, up in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_key = {(r["task"], r["backbone"]): r for r in records}
    for params, name in backbones:
        cells = [name, f"{params / 1e6:.1f}M"]
        for task, metric, _ in columns:
            record = by_key.get((task, name))
            cells.append(f"{record['metrics'][metric]:.3f}" if record else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling_plot(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Headline metric vs encoder parameters (log x), one panel per task, one point per backbone."""
    tasks = [t for t in HEADLINE if any(r["task"] == t for r in records)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.4 * len(tasks), 3.2), squeeze=False)
    for task, ax in zip(tasks, axes[0], strict=True):
        metric, higher = HEADLINE[task][0]
        points = sorted(
            (r["backbone_params"], r["metrics"][metric], r["backbone"]) for r in records if r["task"] == task
        )
        ax.plot([p[0] for p in points], [p[1] for p in points], "-", color="0.7", zorder=1)
        for params, value, name in points:
            ax.scatter([params], [value], zorder=2)
            ax.annotate(
                Path(name).parent.name or name, (params, value), fontsize=7, xytext=(3, 3), textcoords="offset points"
            )
        ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("encoder parameters")
        ax.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def write_report(results: str | Path, out: str | Path) -> tuple[str, Path, Path]:
    """Read a results file, write `out`/results.md and `out`/scaling.png: (the table, its path, the plot's path)."""
    records = read_results(results)
    table = markdown_table(records)
    out = Path(out)
    markdown = atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(table + "\n"))
    return table, markdown, scaling_plot(records, out / "scaling.png")
