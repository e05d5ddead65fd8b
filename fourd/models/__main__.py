"""`python -m fourd.models`: the zoo table (parameters and GFLOPs per 16x224x224 clip), or with `--plan` the
per-GPU memory plan of a training config (Hydra overrides of conf/train.yaml, as for `python -m fourd.train`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from fourd.models.mae import MAEConfig
from fourd.models.memory import FRAGMENTATION_MARGIN, GiB, TrainSetup, max_batch_that_fits, plan_memory
from fourd.models.zoo import format_table, zoo_rows

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
    """Compose conf/train.yaml with Hydra overrides: (run name, MAE config, clips per device, setup)."""
    from hydra import compose, initialize_config_dir

    from fourd.lit.run import mae_config, world_size
    from fourd.train import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    s, world = cfg.strategy, world_size(cfg.trainer)
    hybrid = s.get("sharding", "full") == "hybrid"
    setup = TrainSetup(
        strategy=s.name, world_size=world,
        shard_size=(s.get("shard_size") or world // int(cfg.trainer.num_nodes)) if hybrid else None,
        precision=str(cfg.trainer.precision), activation_checkpointing=bool(s.activation_checkpointing),
        param_dtype=s.get("param_dtype", "bfloat16"), reshard_after_forward=bool(s.get("reshard_after_forward", True)),
        cpu_offload=bool(s.get("cpu_offload", False)),
    )
    return cfg.name, mae_config(cfg.model), int(cfg.data.batch_size), setup


def plan_report(overrides: list[str], gpu_mem_gib: float) -> dict[str, Any]:
    """The plan of a training config as one JSON-ready dict (bytes), with the fit on a `gpu_mem_gib` GPU."""
    name, config, batch, setup = training_setup(overrides)
    plan = plan_memory(config, batch, setup)
    gpu = gpu_mem_gib * GiB
    return {"name": name, "batch": batch, "setup": dataclasses.asdict(setup),
            "shards": setup.shards, "bytes": plan.to_dict(),
            "gpu_mem_gib": gpu_mem_gib, "fits": plan.fits(gpu), "headroom_bytes": int(gpu - plan.total),
            "max_batch": max_batch_that_fits(config, gpu, setup)}


def format_plan(report: dict[str, Any]) -> str:
    """Readable table of a `plan_report`, in GiB."""
    s, b = report["setup"], report["bytes"]
    how = [s["strategy"] + (f" sharded over {report['shards']} ranks" if s["strategy"] == "fsdp" else ""),
           s["precision"]]
    how += [f for f, on in (("activation checkpointing", s["activation_checkpointing"]),
                            ("cpu offload", s["cpu_offload"])) if on]
    lines = [f"{report['name']}: {report['batch']} clips per GPU on {s['world_size']} GPU(s), {', '.join(how)}",
             "| component | GiB |", "|---|---|"]
    lines += [f"| {label} | {b[key] / GiB:.2f} |" for key, label in ROWS]
    lines.append(f"| total | {b['total'] / GiB:.2f} |")
    if b["offloaded"]:
        lines.append(f"host memory per rank (offloaded): {b['offloaded'] / GiB:.2f} GiB")
    gpu, headroom = report["gpu_mem_gib"], report["headroom_bytes"] / GiB
    lines.append(f"fits in {gpu:g} GiB: {'yes' if report['fits'] else 'no'} (headroom {headroom:.2f} GiB)")
    lines.append(f"largest per-device batch that fits: {report['max_batch']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fourd.models", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--mask-ratio", type=float, default=0.95, help="MAE mask ratio for the FLOP count")
    parser.add_argument("--plan", action="store_true", help="memory plan per GPU of the training config")
    parser.add_argument("--gpu-mem", type=float, default=80.0, help="GPU memory in GiB for --plan (default 80)")
    parser.add_argument("overrides", nargs="*", help="with --plan: Hydra overrides, e.g. +exp=vit_e trainer.devices=8")
    args = parser.parse_intermixed_args(argv)
    if args.overrides and not args.plan:
        parser.error("Hydra overrides need --plan")
    if args.plan:
        report = plan_report(args.overrides, args.gpu_mem)
        print(json.dumps(report, indent=1) if args.json else format_plan(report))
        return
    rows = zoo_rows(mask_ratio=args.mask_ratio)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))


if __name__ == "__main__":
    main()
