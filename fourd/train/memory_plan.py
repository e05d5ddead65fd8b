"""The memory plan of a training config: what `python -m fourd.plan` prints."""

from __future__ import annotations

import dataclasses
from typing import Any

from fourd.conf import compose, mae_config
from fourd.models.mae import MAEConfig
from fourd.train.memory import FRAGMENTATION_MARGIN, GiB, TrainSetup, max_batch_that_fits, plan_memory
from fourd.train.parallelize import FSDPConfig, fsdp_settings
from fourd.train.run import world_size
from fourd.train.settings import check_settings

ROWS = (
    ("params", "parameters (fp32 master)"),
    ("grads", "gradients (fp32)"),
    ("optimizer", "AdamW exp_avg + exp_avg_sq (fp32)"),
    ("working_params", "working parameters (FSDP gathered / autocast copies)"),
    ("activations", "activations (saved for backward)"),
    ("overhead", "CUDA context and framework"),
    ("fragmentation", f"fragmentation margin ({FRAGMENTATION_MARGIN:.0%})"),
)


def training_setup(overrides: list[str]) -> tuple[str, MAEConfig, int, TrainSetup]:
    """Compose the train config with Hydra overrides: (run name, MAE config, clips per device, setup)."""
    cfg = compose("train", overrides)
    check_settings(cfg)
    world = world_size(cfg.trainer)
    setup = TrainSetup(
        strategy=cfg.strategy.name,
        world_size=world,
        devices_per_node=world // int(cfg.trainer.num_nodes),
        precision=str(cfg.trainer.precision),
        activation_checkpointing=bool(cfg.strategy.activation_checkpointing),
        fsdp=FSDPConfig(**fsdp_settings(cfg.strategy)),
    )
    return cfg.name, mae_config(cfg.model), int(cfg.data.batch_size), setup


def plan_report(overrides: list[str], gpu_mem_gib: float) -> dict[str, Any]:
    """The plan of a training config as one JSON-ready dict (bytes), with the fit on a `gpu_mem_gib` GPU."""
    name, config, batch, setup = training_setup(overrides)
    plan = plan_memory(config, batch, setup)
    gpu = gpu_mem_gib * GiB
    return {
        "name": name,
        "batch": batch,
        "setup": dataclasses.asdict(setup),
        "shards": setup.shards,
        "bytes": plan.to_dict(),
        "gpu_mem_gib": gpu_mem_gib,
        "fits": plan.fits(gpu),
        "headroom_bytes": int(gpu - plan.total),
        "max_batch": max_batch_that_fits(config, gpu, setup),
    }


def format_plan(report: dict[str, Any]) -> str:
    """Readable table of a `plan_report`, in GiB."""
    s, b = report["setup"], report["bytes"]
    how = [
        s["strategy"] + (f" sharded over {report['shards']} ranks" if s["strategy"] == "fsdp" else ""),
        s["precision"],
    ]
    how += [
        f
        for f, on in (
            ("activation checkpointing", s["activation_checkpointing"]),
            ("cpu offload", s["fsdp"]["cpu_offload"]),
        )
        if on
    ]
    lines = [
        f"{report['name']}: {report['batch']} clips per GPU on {s['world_size']} GPU(s), {', '.join(how)}",
        "| component | GiB |",
        "|---|---|",
    ]
    lines += [f"| {label} | {b[key] / GiB:.2f} |" for key, label in ROWS]
    lines.append(f"| total | {b['total'] / GiB:.2f} |")
    if b["offloaded"]:
        lines.append(f"host memory per rank (offloaded): {b['offloaded'] / GiB:.2f} GiB")
    gpu, headroom = report["gpu_mem_gib"], report["headroom_bytes"] / GiB
    lines.append(f"fits in {gpu:g} GiB: {'yes' if report['fits'] else 'no'} (headroom {headroom:.2f} GiB)")
    lines.append(f"largest per-device batch that fits: {report['max_batch']}")
    return "\n".join(lines)
