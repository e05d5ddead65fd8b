"""`python -m fourd.extract --ckpt X.safetensors --videos DIR_OR_CSV --out DIR`: features for other projects.

Writes one safetensors per video (tensors layer_<i>, each (tokens, width), tokens in (t, h, w) raster order).
Unreadable videos are skipped and listed at the end.
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
        prog="python -m fourd.extract", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="fourd safetensors (encoder or depth model)")
    parser.add_argument("--videos", required=True, help="a folder of videos (recursive) or a CSV of paths")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--layer",
        type=int,
        nargs="+",
        default=None,
        help="feature-list indices (0 = tokens, i = input of block i-1; negative from the end); "
        "default: the layer the model's readout reads (a depth model's own readout_depth, else 0.95)",
    )
    parser.add_argument("--stride", type=whole_number(1), default=2, help="frame stride of the centre clip")
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, gpu or cuda:N")
    parser.add_argument(
        "--overwrite", action="store_true", help="write into an output folder that already holds files (never an input)"
    )
    args = parser.parse_args(argv)
    check_output(args.out, [args.videos, args.ckpt], args.overwrite, kind="folder")
    # torch loads after parsing: --help stays fast
    from fourd.devices import compute_device
    from fourd.inference import extract_features
    from fourd.weights import encoder_of, load, readout_depth_of

    device = compute_device(args.device)
    model = load(args.ckpt)
    written, failed = extract_features(
        encoder_of(model).to(device), args.videos, args.out, args.layer, args.stride, readout_depth_of(model)
    )
    print(f"wrote {len(written)} feature files to {args.out}; skipped {len(failed)} unreadable videos")
    for video, reason in failed.items():
        print(f"  skipped {video}: {reason}", file=sys.stderr)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
