"""`python -m fourd.models [--json] [--mask-ratio R]`: the zoo table, parameters and forward GFLOPs per
16x224x224 clip of every registry size (the per-GPU memory plan of a training run is `python -m fourd.plan`)."""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fourd.models", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--mask-ratio", type=float, default=0.95, help="MAE mask ratio for the FLOP count")
    args = parser.parse_args(argv)
    if not 0 <= args.mask_ratio < 1:
        parser.error(f"argument --mask-ratio: {args.mask_ratio} must be in [0, 1)")
    from fourd.models.zoo import format_table, zoo_rows  # torch loads after parsing: --help stays fast

    rows = zoo_rows(mask_ratio=args.mask_ratio)
    print(json.dumps(rows, indent=1) if args.json else format_table(rows))


if __name__ == "__main__":
    main()
