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
import contextlib
import sys
from pathlib import Path

from fourd.errors import FourdError, cli
from fourd.files import check_output


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fourd.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="step_*.ckpt (file or sharded directory), or a run directory")
    parser.add_argument("--out", default=None, help="output .safetensors (default: WHAT.safetensors)")
    parser.add_argument("--what", default="encoder", help="encoder (the default: the encoder alone) or mae")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input)")
    args = parser.parse_args(argv)
    out = args.out or f"{args.what}.safetensors"
    check_output(out, [args.checkpoint], args.overwrite)
    from fourd.train.checkpoint_export import export_checkpoint, resolve_checkpoint  # torch loads after parsing

    if Path(args.checkpoint).is_dir():  # a run folder stands for its newest checkpoint: never the output either
        with contextlib.suppress(FourdError):  # none there: export_checkpoint says so, after checking --what
            check_output(out, [resolve_checkpoint(args.checkpoint)], args.overwrite)
    path = export_checkpoint(args.checkpoint, out, args.what)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
