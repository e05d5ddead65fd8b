"""Probe results (JSON lines) as a markdown table (mean ± std over seeds, baselines first) and a plot of each
task's headline metric against encoder size, with error bars and the baselines drawn as reference lines.

Seeds are pooled only within one measurement: a (task, backbone) measured under more than one protocol (other data,
readout or training settings: the results' `protocol` key) gets one row per protocol, labelled `<backbone>
[protocol <key>]`; lines written before the key count as protocol `unknown`."""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)
from matplotlib.ticker import NullFormatter  # noqa: E402

from fourd.errors import FourdError, first_few, one_line  # noqa: E402
from fourd.files import atomic_write  # noqa: E402
from fourd.probe.backbones import BASELINES, backbone_label  # noqa: E402
from fourd.probe.tasks import TASKS  # noqa: E402

# task -> (metric, higher is better) shown in the table; the first is the task's headline, which is plotted
SHOWN = {
    "depth": [("abs_rel", False), ("delta1", True)],
    "points": [("average_jaccard", True), ("occlusion_accuracy", True)],
    "boxes": [("mean_iou", True)],
    "pose": [("rotation_error_deg", False), ("translation_angle_deg", False)],
    "classification": [("top1", True)],
}
Key = tuple[str, str]  # (task, row): the row is the backbone, labelled with its protocol where it has several
UNKNOWN_PROTOCOL = "unknown"  # results lines written before they carried a protocol key
RECORD_KEYS = ("task", "backbone", "backbone_params", "metrics")
log = logging.getLogger(__name__)


class ResultsError(FourdError, ValueError):
    """A results file with nothing to report."""


def parse_result(line: str) -> dict[str, Any]:
    """One results line as a record; ValueError if it is not one (cut short, edited, another file's)."""
    record = json.loads(line)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"no {', '.join(missing)}")
    if not isinstance(record["metrics"], dict):
        raise ValueError("metrics is not an object")
    return record


def read_result_lines(path: str | Path) -> list[dict[str, Any]]:
    """Every probe result in a results file, in order; lines that are not results (one cut short by a killed run,
    an edited one) are skipped, and named in one warning."""
    records = []
    skipped = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = parse_result(line)
        except ValueError as err:  # json.JSONDecodeError is one
            skipped.append(f"{number} ({one_line(err)})")
            continue
        records.append(record)
    if skipped:
        log.warning(f"{path}: skipped {len(skipped)} lines that are not probe results: line {first_few(skipped, 5)}")
    return records


def protocol_of(record: dict[str, Any]) -> str:
    return str(record.get("protocol") or UNKNOWN_PROTOCOL)


def read_results(path: str | Path) -> dict[Key, list[dict[str, Any]]]:
    """Records per (task, row), one per seed, pooled only within one (task, data, backbone, protocol): the newest
    line wins for each seed of it. The row is the backbone, or, where the task measured that backbone under more
    than one protocol (or, before protocols, on other data), `<backbone> [protocol <key>]` for each."""
    latest: dict[tuple[str, str, str, str, int], dict[str, Any]] = {}
    for record in read_result_lines(path):
        data = str(record.get("data") or "")
        latest[(record["task"], record["backbone"], data, protocol_of(record), record.get("seed", 0))] = record
    if not latest:
        raise ResultsError(f"no results in {path}")
    measured: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)  # (task, backbone) -> {(data, protocol)}
    for task, backbone, data, protocol, _ in latest:
        measured[(task, backbone)].add((data, protocol))
    grouped: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for (task, backbone, data, protocol, _), record in sorted(latest.items()):
        variants = measured[(task, backbone)]
        tag = f"protocol {protocol if protocol == UNKNOWN_PROTOCOL else protocol[:6]}"
        if sum(p == protocol for _, p in variants) > 1:  # the same (unknown) protocol on other data
            tag = f"{data}, {tag}"
        grouped[(task, backbone if len(variants) == 1 else f"{backbone} [{tag}]")].append(record)
    return dict(grouped)


def mean_std(records: list[dict[str, Any]], metric: str) -> tuple[float, float]:
    """Mean and sample standard deviation of a metric over seeds (std 0 for one seed)."""
    values = [r["metrics"][metric] for r in records]
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def base_backbones(results: dict[Key, list[dict[str, Any]]]) -> dict[str, str]:
    """Each row's backbone (a row labelled with its protocol is still that backbone's)."""
    return {row: records[0]["backbone"] for (_, row), records in results.items()}


def backbone_order(results: dict[Key, list[dict[str, Any]]]) -> list[str]:
    """Baselines first (trivial, pixels, random; each before its rows of other protocols), then the other backbones
    by size."""
    params = {b: records[0]["backbone_params"] for (_, b), records in results.items()}
    base = base_backbones(results)
    baselines = sorted((b for b in params if base[b] in BASELINES), key=lambda b: (BASELINES.index(base[b]), b))
    return baselines + sorted((b for b in params if base[b] not in BASELINES), key=lambda b: (params[b], b))


def markdown_table(results: dict[Key, list[dict[str, Any]]]) -> str:
    """One row per backbone, one column per shown metric of each task: mean ± std over n seeds."""
    tasks = [t for t in SHOWN if any(task == t for task, _ in results)]
    columns = [(t, m, up) for t in tasks for m, up in SHOWN[t]]
    header = ["backbone", "params", "seeds"] + [f"{t} {m} {'↑' if up else '↓'}" for t, m, up in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in backbone_order(results):
        rows = [records for (_, b), records in results.items() if b == name]
        cells = [name, f"{rows[0][0]['backbone_params'] / 1e6:.2f}M", str(max(len(r) for r in rows))]
        for task, metric, _ in columns:
            records = results.get((task, name))
            if records:
                mean, std = mean_std(records, metric)
                cells.append(f"{mean:.3f} ± {std:.3f}")
            else:
                cells.append("")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def margin_cell(records: list[dict[str, Any]], baseline: list[dict[str, Any]], metric: str, higher: bool) -> str:
    """How far `records` beat `baseline` on `metric` (positive: better), in units of their pooled seed std."""
    mean, std = mean_std(records, metric)
    base_mean, base_std = mean_std(baseline, metric)
    margin = (mean - base_mean) if higher else (base_mean - mean)
    pooled = ((std**2 + base_std**2) / 2) ** 0.5
    if min(len(records), len(baseline)) < 2 and pooled == 0:
        return f"{margin:+.3f} (one seed)"
    sigmas = margin / pooled if pooled else (math.inf if margin > 0 else -math.inf if margin < 0 else 0.0)
    return f"{margin:+.3f} ({sigmas:+.1f}σ){' ✓' if sigmas > 2 else ''}"


def margins_table(results: dict[Key, list[dict[str, Any]]]) -> str:
    """Per backbone and task: its headline margin over each baseline that it is not, in pooled seed stds; ✓ marks
    a margin above 2σ. A representation is worth something only where it beats every baseline."""
    tasks = [t for t in SHOWN if any(task == t for task, _ in results)]
    base = base_backbones(results)
    names = [b for b in backbone_order(results) if base[b] != "trivial"]
    lines = ["| backbone | vs | " + " | ".join(f"{t} {TASKS[t].headline[0]}" for t in tasks) + " |"]
    lines.append("|" + "---|" * (len(tasks) + 2))
    for name in names:
        for baseline in [b for b in BASELINES if b != name and any(key == (t, b) for t in tasks for key in results)]:
            cells = []
            for task in tasks:
                metric, higher = TASKS[task].headline
                ours, theirs = results.get((task, name)), results.get((task, baseline))
                cells.append(margin_cell(ours, theirs, metric, higher) if ours and theirs else "")
            lines.append(f"| {name} | {baseline} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def scaling_plot(results: dict[Key, list[dict[str, Any]]], path: str | Path) -> Path:
    """Headline metric (mean ± std over seeds) vs encoder parameters, one panel per task. `trivial` and
    `pixels` are horizontal reference lines; the y axis starts at 0 so that gaps are shown at their size."""
    tasks = [t for t in SHOWN if any(task == t for task, _ in results)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.8 * len(tasks), 3.4), squeeze=False)
    for task, ax in zip(tasks, axes[0], strict=True):
        metric, higher = TASKS[task].headline
        tops = []
        base = base_backbones(results)
        rows = [b for b in backbone_order(results) if (task, b) in results]
        references = {"trivial": ("0.35", ":"), "pixels": ("tab:orange", "--")}
        for name in [b for b in rows if base[b] in references]:
            mean, std = mean_std(results[(task, name)], metric)
            colour, line = references[base[name]]
            ax.axhline(mean, color=colour, linestyle=line if name == base[name] else "-.", label=f"{name} {mean:.3f}")
            tops.append(mean + std)
        encoders = [b for b in rows if base[b] not in references]
        sizes = []
        for name in encoders:
            mean, std = mean_std(results[(task, name)], metric)
            params = results[(task, name)][0]["backbone_params"]
            near = sum(abs(size - params) < 0.1 * params for size in sizes)  # about one size: side by side
            nudge = 1 + 0.15 * near
            sizes.append(params)
            label = backbone_label(base[name]) + name.removeprefix(base[name])  # and its protocol, where labelled
            ax.errorbar([params * nudge], [mean], yerr=[std], fmt="o", capsize=3, label=label)
            tops.append(mean + std)
        ax.set_xscale("log")
        if sizes:
            ax.set_xlim(min(sizes) / 3, max(sizes) * 3)
        ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels collide
        ax.set_ylim(0, 1.15 * max(tops) if tops else 1)
        ax.set_title(task)
        ax.set_xlabel("encoder parameters")
        ax.set_ylabel(f"{metric} ({'higher' if higher else 'lower'} is better)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")  # the values sit high on an axis from 0
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def write_report(results: str | Path, out: str | Path) -> tuple[str, Path, Path]:
    """Read a results file, write `out`/results.md and `out`/scaling.png: (the table, its path, the plot's path)."""
    grouped = read_results(results)
    table = markdown_table(grouped) + "\n\nMargins over the baselines (headline metric, mean over seeds):\n\n"
    table += margins_table(grouped)
    out = Path(out)
    markdown = atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(table + "\n"))
    return table, markdown, scaling_plot(grouped, out / "scaling.png")
