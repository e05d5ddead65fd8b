"""`python -m fourd.world --out DIR --num N`: render the procedural 4D world (video + exact 4D ground truth).

Writes DIR/<split>/<index>.npz for the train, val and test splits and DIR/world.json. Running it again
with the same settings does nothing; other settings regenerate the world. A folder that holds other files is
refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import sys

from fourd.arguments import whole_number
from fourd.errors import cli
from fourd.files import check_output


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fourd.world", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num", type=whole_number(1), required=True, help="training clips")
    parser.add_argument(
        "--val", type=whole_number(0), default=None, help="validation clips (default: num / 8, at least 1)"
    )
    parser.add_argument("--test", type=whole_number(0), default=None, help="test clips (default: num / 4, at least 1)")
    parser.add_argument("--frames", type=whole_number(1), help="frames per clip (default 8)")
    parser.add_argument("--size", type=whole_number(8), help="frame height and width in pixels (default 64)")
    parser.add_argument("--seed", type=whole_number(0), help="clip i depends only on (seed, i) (default 0)")
    parser.add_argument("--points", type=whole_number(1), help="tracked points per clip (default 32)")
    parser.add_argument("--objects", type=whole_number(1), help="moving objects per clip (default 3)")
    parser.add_argument(
        "--overwrite", action="store_true", help="write into a folder that holds files but no fourd world"
    )
    args = parser.parse_args(argv)
    from fourd.data.world import WorldConfig, generate_world, is_world  # torch loads after parsing: --help stays fast

    check_output(args.out, overwrite=args.overwrite, kind="folder", made_by=is_world)

    given = dict(
        num_frames=args.frames, size=args.size, num_points=args.points, num_objects=args.objects, seed=args.seed
    )
    config = WorldConfig(**{k: v for k, v in given.items() if v is not None})  # WorldConfig's default where not given
    splits = {
        "train": args.num,
        "val": max(1, args.num // 8) if args.val is None else args.val,
        "test": max(1, args.num // 4) if args.test is None else args.test,
    }
    root = generate_world(args.out, config, splits)
    print(f"4D world at {root}: " + ", ".join(f"{count} {split}" for split, count in splits.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
