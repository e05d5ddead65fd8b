"""`python -m fourd.plan [--gpu-mem GiB] [--json] OVERRIDES...`: per-GPU memory plan of a training config.

OVERRIDES are the Hydra overrides of `python -m fourd.train`, e.g. `+exp=vit_e trainer.devices=8`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from fourd.arguments import number_in
from fourd.errors import cli


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fourd.plan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--gpu-mem", type=number_in(0, math.inf), default=80.0, help="GPU memory in GiB (default 80)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. +exp=vit_e trainer.devices=8")
    args = parser.parse_intermixed_args(argv)
    from fourd.train.memory_plan import format_plan, plan_report  # torch loads after parsing: --help stays fast

    report = plan_report(args.overrides, args.gpu_mem)
    print(json.dumps(report, indent=1) if args.json else format_plan(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
