"""`python -m fourd.depth VIDEO --ckpt DEPTH.safetensors --out OUT.mp4`: RGB | depth video + PNG frames."""

from __future__ import annotations

import argparse
import sys

from fourd.arguments import whole_number
from fourd.errors import cli
from fourd.files import check_output


@cli
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fourd.depth", description=__doc__)
    parser.add_argument("video", help="any video decord/PyAV can read; resized to the model's resolution")
    parser.add_argument("--ckpt", required=True, help="depth model safetensors (python -m fourd.convert ...)")
    parser.add_argument("--out", required=True, help="output .mp4; PNG frames go to <out stem>_frames/")
    parser.add_argument("--fps", type=whole_number(1), default=8)
    parser.add_argument("--device", default="auto", help="auto (cuda if available, else cpu), cpu, gpu or cuda:N")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output video and its frames folder (never an input)",
    )
    args = parser.parse_args(argv)
    out = check_output(args.out, [args.video, args.ckpt], args.overwrite)
    check_output(out.with_name(f"{out.stem}_frames"), [args.video, args.ckpt], args.overwrite, kind="folder")
    # torch loads after parsing: --help stays fast
    from fourd.devices import compute_device
    from fourd.inference import depth_video
    from fourd.models.depth_model import DepthModel
    from fourd.weights import CheckpointError, load

    device = compute_device(args.device)
    model = load(args.ckpt)
    if not isinstance(model, DepthModel):
        raise CheckpointError(f"{args.ckpt} holds an encoder without a depth readout")
    path = depth_video(model.to(device), args.video, out, args.fps, overwrite=args.overwrite)
    print(f"wrote {path} and {path.with_name(path.stem + '_frames')}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
