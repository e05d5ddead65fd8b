"""`python -m fourd.convert SRC.npz DST.safetensors`: official 4DS checkpoint -> fourd safetensors.

The architecture is read off the tensor shapes; what shapes cannot tell (readout depth, output patch, input
frames) defaults to the release and can be overridden. Every source key must be consumed and every model
parameter filled, or nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from fourd.checkpoint import CheckpointError, load_state_strict, save_weights
from fourd.models.readout import DepthConfig, DepthModel
from fourd.models.vit import SpaceTimeViT, ViTConfig
from fourd.official import official_model_config, official_state


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file; a clear error for a missing, truncated or non-npz file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint (truncated or corrupt?): {err}") from err


def build_official_model(config: ViTConfig | DepthConfig) -> SpaceTimeViT | DepthModel:
    with torch.device("meta"):
        return DepthModel(config) if isinstance(config, DepthConfig) else SpaceTimeViT(config)


def convert_official(src: str | Path, dst: str | Path, num_frames: int | None = None, readout_depth: float = 0.95,
                     output_patch: tuple[int, int, int] = (2, 8, 8)) -> Path:
    """Convert an official .npz to fourd safetensors (config in metadata); raises before writing on any mismatch."""
    params = read_npz(src)
    try:
        config = official_model_config(params, num_frames, readout_depth, output_patch)
        state, used = official_state(params, config)
    except KeyError as err:
        raise CheckpointError(f"{src} is not a 4DS checkpoint: missing key {err}") from err
    except ValueError as err:
        raise CheckpointError(f"{src}: {err}") from err
    unused = sorted(set(params) - used)
    if unused:
        raise CheckpointError(f"{src}: {len(unused)} keys not consumed by the inferred model: "
                              f"{', '.join(unused[:8])}{' ...' if len(unused) > 8 else ''}")
    model = build_official_model(config)
    load_state_strict(model, state, str(src), check_only=True)
    kind = "depth" if isinstance(config, DepthConfig) else "encoder"
    return save_weights(dst, state, kind, config.to_dict(), extra={"source": Path(src).name})


def parse_patch(text: str) -> tuple[int, int, int]:
    parts = tuple(int(p) for p in text.split(","))
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"expected T,H,W, got {text!r}")
    return parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fourd.convert", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", help="official .npz (e.g. scaling4d_dist_b_depth.npz)")
    parser.add_argument("dst", help="output .safetensors")
    parser.add_argument("--readout-depth", type=float, default=0.95, help="relative depth of the readout feature")
    parser.add_argument("--output-patch", type=parse_patch, default=(2, 8, 8), help="readout output patch T,H,W")
    parser.add_argument("--num-frames", type=int, default=None, help="input frames (default: from the shapes)")
    args = parser.parse_args(argv)
    try:
        path = convert_official(args.src, args.dst, args.num_frames, args.readout_depth, args.output_patch)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
