"""A scaling study (fourd/conf/study.yaml): pretrain each size with one recipe, probe each on the 4D tasks beside
the baselines, write the report. Each step runs as its own fourd command (so train and probe stay apart); a rerun
skips the sizes already pretrained and the probes already recorded."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from fourd.errors import PREEMPTED_EXIT_CODE, ConfigError, FourdError
from fourd.probe.results import read_result_lines

log = logging.getLogger(__name__)


SHAPE_LETTERS = {"width": "w", "depth": "d", "heads": "h", "mlp": "m"}


def size_name(size: Mapping[str, Any]) -> str:
    """A folder name from every model override of one size: `vit_b`, `w128_d4_h4_m512` for an explicit shape,
    and any other override after them as key-value (`vit_b_drop_path0.1`)."""
    parts = [f"vit_{size['size']}"] if "size" in size else []
    parts += [f"{letter}{size[key]}" for key, letter in SHAPE_LETTERS.items() if key in size]
    parts += [f"{key}{size[key]}" for key in sorted(size) if key != "size" and key not in SHAPE_LETTERS]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", "_".join(parts))


def size_names(sizes: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each size's folder name; a ConfigError where two sizes would share one (each must be trained apart)."""
    names = [size_name(size) for size in sizes]
    for i, name in enumerate(names):
        if name in names[:i]:
            first = names.index(name)
            raise ConfigError(
                f"sizes: {dict(sizes[first])} and {dict(sizes[i])} would share the folder {name}: list each size once"
            )
    return names


def train_command(train: Sequence[str], size: Mapping[str, Any], run_dir: Path) -> list[str]:
    """Pretraining of one size in its own folder, continuing where a killed study left it."""
    model = [f"model.{key}={value}" for key, value in size.items()]
    return [sys.executable, "-m", "fourd.train", *train, *model, "resume=auto", f"hydra.run.dir={run_dir}"]


def recorded(results: Path) -> set[tuple[str, str, int]]:
    """(task, backbone, seed) of every probe already in the results file, read as the report reads it (a line cut
    short by a killed run is skipped)."""
    if not results.is_file():
        return set()
    return {(row["task"], row["backbone"], row.get("seed", 0)) for row in read_result_lines(results)}


def probe_command(
    tasks: Sequence[str], backbones: Sequence[str], seeds: Sequence[int], overrides: Sequence[str], out: Path
) -> list[str]:
    """One Hydra multirun of fourd.probe over tasks x backbones x seeds, recording into <out>/probe_results.jsonl."""
    return [
        sys.executable, "-m", "fourd.probe", "-m",
        f"probe={','.join(tasks)}", f"backbone={','.join(backbones)}", f"seed={','.join(map(str, seeds))}",
        f"results={out / 'probe_results.jsonl'}", f"hydra.sweep.dir={out / 'probe'}", *overrides,
    ]  # fmt: skip


def missing(backbones: Sequence[str], tasks: Sequence[str], seeds: Sequence[int], done: set) -> list[str]:
    """The backbones with a probe not yet recorded."""
    return [b for b in backbones if any((t, b, s) not in done for t in tasks for s in seeds)]


def run(command: list[str]) -> None:
    """Run one step of the study; a step that fails ends the study with one line (its own error is above it), and
    one stopped by a signal stops the study with the same exit code."""
    log.info(" ".join(command[1:]))
    code = subprocess.run(command).returncode
    if code == PREEMPTED_EXIT_CODE:
        raise SystemExit(code)
    if code:
        raise FourdError(
            f"`python {' '.join(command[1:3])}` failed with exit code {code} (its error is above); run the study "
            "again to go on from there"
        )


def study(cfg: DictConfig) -> Path:
    """Pretrain, probe and report; returns the report folder."""
    out = Path(cfg.out)
    encoders = []
    sizes = OmegaConf.to_container(cfg.sizes)
    for size, name in zip(sizes, size_names(sizes), strict=True):
        run_dir = out / name
        encoders.append(str(run_dir / "encoder.safetensors"))
        if not Path(encoders[-1]).is_file():
            run(train_command(list(cfg.train), size, run_dir))
    p = cfg.probe
    todo = missing([*p.baselines, *encoders], p.tasks, p.seeds, recorded(out / "probe_results.jsonl"))
    if todo:
        run(probe_command(list(p.tasks), todo, list(p.seeds), list(p.overrides), out))
    report = out / "report"
    run([sys.executable, "-m", "fourd.report", "--results", str(out / "probe_results.jsonl"), "--out", str(report)])
    return report
