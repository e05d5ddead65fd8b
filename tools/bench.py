"""Throughput of full MAE pretraining steps (optionally against a plain reference), the loader, or inference.

    python tools/bench.py --exp demo --steps 20 --compare-reference
    python tools/bench.py --exp vit_b --batch 2 --steps 5 --compare-hf  # the peer: transformers' VideoMAE
    python tools/bench.py --exp vit_b --batch 2 --steps 5 --compare-hf --profile 3  # and where each step's time goes
    python tools/bench.py --exp vit_l --batch 32 --compile            # bf16 autocast and MFU on CUDA
    python tools/bench.py --exp demo --loader --steps 50                # the training data loader alone
    python tools/bench.py --make-videos DIR                              # 40 Kinetics-like H.264 videos to read
    python tools/bench.py --exp vit_l --loader data=video data.dataset.source=DIR data.repeated_sampling=4
                                          # clips/s beside the raw decode limit and what a GPU would consume
    python tools/bench.py --exp vit_22b --forward-only --batch 1        # encoder inference, bf16 weights

Trailing arguments are Hydra overrides of the train config (model.size=l data.batch_size=32 ...).
Prints one JSON line on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from fourd.arguments import number_in, whole_number
from fourd.errors import ConfigError, cli
from fourd.files import check_output


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp", default="demo", help="experiment config (conf/exp/NAME.yaml)")
    parser.add_argument("--batch", type=whole_number(1), help="clips per step (data.batch_size)")
    parser.add_argument("--mask-ratio", type=number_in(0, 1, "[)"), help="model.mask_ratio")
    parser.add_argument("--attn", help="attention backend (model.attn_backend): auto, xformers, sdpa or reference")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (per block under FSDP)")
    parser.add_argument("--activation-checkpointing", action="store_true", help="activation checkpointing per block")
    parser.add_argument(
        "--dtype",
        help="fp32, or bf16 = autocast (weights too with --forward-only); default bf16 on CUDA, fp32 on CPU",
    )
    parser.add_argument("--device", help="cuda, cuda:1, cpu, ... (default: cuda where there is one, else cpu)")
    parser.add_argument("--steps", type=whole_number(1), default=10, help="timed steps (batches with --loader)")
    parser.add_argument(
        "--warmup",
        type=whole_number(0),
        default=3,
        help="untimed steps first (compilation, workers); then, with a model, one more measures memory",
    )
    parser.add_argument("--compare-reference", action="store_true", help="also time the plain reference MAE")
    parser.add_argument(
        "--compare-hf", action="store_true", help="also time transformers' VideoMAEForPreTraining (the compare extra)"
    )
    parser.add_argument(
        "--profile",
        type=whole_number(0),
        default=0,
        metavar="ROUNDS",
        help="then profile ROUNDS more steps of each model: seconds per step in GEMMs, attention, conv and the rest",
    )
    parser.add_argument(
        "--mfu", type=number_in(0, 1, "(]"), default=0.45, help="--loader: the MFU a GPU is assumed to train at"
    )
    parser.add_argument(
        "--gpu-tflops",
        type=number_in(0, math.inf),
        help="--loader: that GPU's peak (default: measured on CUDA, else an H100's 989)",
    )
    parser.add_argument("--make-videos", type=Path, metavar="DIR", help="write Kinetics-like videos to DIR and stop")
    parser.add_argument("--num-videos", type=whole_number(1), default=40, help="how many for --make-videos")
    parser.add_argument(
        "--overwrite", action="store_true", help="--make-videos into a folder that holds other files too"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--loader", action="store_true", help="time the training data loader alone")
    mode.add_argument("--forward-only", action="store_true", help="time encoder inference on whole clips")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of the train config")
    return parser.parse_args(argv)


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The options that are config values, as Hydra overrides (they win over the trailing ones)."""
    values = {
        "data.batch_size": args.batch,
        "model.mask_ratio": args.mask_ratio,
        "model.attn_backend": args.attn,
        "compile": args.compile or None,
        "strategy.activation_checkpointing": args.activation_checkpointing or None,
    }
    return [f"{key}={value}" for key, value in values.items() if value is not None]


@cli
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.make_videos:
        from fourd.bench.videos import is_video_folder, write_kinetics_like_folder

        check_output(args.make_videos, overwrite=args.overwrite, kind="folder", made_by=is_video_folder)
        print(json.dumps({"videos": len(write_kinetics_like_folder(args.make_videos, args.num_videos))}), flush=True)
        return 0
    from fourd.bench.build import DTYPES  # torch loads after parsing: --help stays fast
    from fourd.bench.run import (
        BenchOptions,
        bench_forward,
        bench_loader,
        bench_train,
        compose_train,
        default_dtype,
    )
    from fourd.devices import compute_device

    if args.dtype not in (None, *DTYPES):
        raise ConfigError(f"--dtype {args.dtype}: choose one of {', '.join(DTYPES)}")
    cfg = compose_train(args.exp, [*args.overrides, *flag_overrides(args)])
    device = str(compute_device(args.device))
    opts = BenchOptions(
        device,
        args.dtype or default_dtype(device),
        args.steps,
        args.warmup,
        args.compare_reference,
        args.compare_hf,
        args.mfu,
        args.gpu_tflops * 1e12 if args.gpu_tflops else None,
        args.profile,
    )
    bench = bench_loader if args.loader else bench_forward if args.forward_only else bench_train
    print(json.dumps(bench(args.exp, cfg, opts)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
