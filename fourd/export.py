"""`python -m fourd.export CHECKPOINT [--out FILE] [--what encoder|mae]`: a pretraining checkpoint -> one safetensors.

CHECKPOINT is a Lightning checkpoint written by a fourd pretraining run: a `step_<N>.ckpt` file (single device,
DDP), a sharded `step_<N>.ckpt` directory of DCP shards (strategy=fsdp), or a run directory (or its checkpoints/
folder), which stands for its newest complete checkpoint. It is read on the CPU, without a process group and
without the optimizer state. The output is unwrapped and carries its config in the metadata: `--what encoder`
(the default) is read by `fourd.load` / `load_encoder` like a run's own encoder.safetensors, `--what mae`
(encoder + decoder, to continue pretraining or fine-tune) by `fourd.load` too.
"""

from __future__ import annotations

import argparse
import sys

from fourd.errors import cli


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fourd.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="step_*.ckpt (file or sharded directory), or a run directory")
    parser.add_argument("--out", default=None, help="output .safetensors (default: WHAT.safetensors)")
    parser.add_argument("--what", default="encoder", help="encoder (the default: the encoder alone) or mae")
    args = parser.parse_args(argv)
    from fourd.train.export import export_checkpoint  # torch loads after parsing: --help stays fast

    path = export_checkpoint(args.checkpoint, args.out or f"{args.what}.safetensors", args.what)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
