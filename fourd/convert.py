"""`python -m fourd.convert SRC.npz DST.safetensors`: official 4DS checkpoint -> fourd safetensors.

The architecture is read off the tensor shapes; what shapes cannot tell (readout depth, output patch, input
frames) defaults to the release and can be overridden. Every source key must be consumed and every model
parameter filled, or nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from fourd.errors import cli
from fourd.files import check_output
from fourd.models.sizes import RELEASE_READOUT_DEPTH


def parse_patch(text: str) -> tuple[int, int, int]:
    parts = tuple(int(p) for p in text.split(","))
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected T,H,W, got {text!r}")
    return parts


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fourd.convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("src", help="official .npz (e.g. scaling4d_dist_b_depth.npz)")
    parser.add_argument("dst", help="output .safetensors")
    parser.add_argument(
        "--readout-depth", type=float, default=RELEASE_READOUT_DEPTH, help="relative depth of the readout feature"
    )
    parser.add_argument("--output-patch", type=parse_patch, default=(2, 8, 8), help="readout output patch T,H,W")
    parser.add_argument("--num-frames", type=int, default=None, help="input frames (default: from the shapes)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input)")
    args = parser.parse_args(argv)
    check_output(args.dst, [args.src], args.overwrite)
    from fourd.official import convert_official  # torch loads after parsing: --help stays fast

    path = convert_official(args.src, args.dst, args.num_frames, args.readout_depth, args.output_patch)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
