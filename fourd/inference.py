"""Running loaded models on whole videos: clip windows, depth videos, feature files."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from tqdm import tqdm

from fourd.data.clips import list_videos, sample_clip_indices
from fourd.data.transforms import ClipTransform
from fourd.data.video import VideoReadError, count_frames, read_frames, write_video
from fourd.errors import ConfigError
from fourd.files import atomic_write, check_output, content_key, creation_mode
from fourd.models.depth_model import DepthModel
from fourd.models.readout import readout_layer_index
from fourd.models.sizes import RELEASE_READOUT_DEPTH
from fourd.models.vit import SpaceTimeViT
from fourd.viz import colorize

log = logging.getLogger(__name__)


def padded_windows(num_frames: int, window: int) -> Iterator[list[int]]:
    """Consecutive windows of `window` frame indices covering a video; the last repeats its final frame."""
    for start in range(0, num_frames, window):
        yield [min(i, num_frames - 1) for i in range(start, start + window)]


def to_model_input(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (T, H, W, 3) frames -> float (1, 3, T, h, w) in [0, 1], resized (antialiased) to `size`."""
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255)
    video = F.interpolate(video, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
    return video.permute(1, 0, 2, 3)[None]


@torch.no_grad()
def predict_depth(model: DepthModel, frames: np.ndarray, progress: bool = True) -> np.ndarray:
    """Depth (T, h, w) of a whole video at the model's resolution, clip-sized window by window."""
    window = model.config.readout.num_frames
    size = model.config.encoder.image_size
    depths = []
    windows = list(padded_windows(len(frames), window))
    device = next(model.parameters()).device
    for indices in tqdm(windows, desc="depth", unit="clip", disable=not progress):
        depth = model(to_model_input(frames[indices], size).to(device))[0].float().cpu().numpy()
        depths.append(depth[: len(set(indices))])
    return np.concatenate(depths)


def depth_video(
    model: DepthModel, src: str | Path, out: str | Path, fps: int = 8, progress: bool = True, overwrite: bool = False
) -> Path:
    """Write `out` (mp4: RGB | colour-mapped depth) and `<out stem>_frames/` (one PNG per frame); with `overwrite`,
    in place of those there (never of `src`)."""
    src, out = Path(src), Path(out)
    frames_dir = out.with_name(f"{out.stem}_frames")
    check_output(out, [src], overwrite)
    check_output(frames_dir, [src], overwrite, kind="folder")
    frames = read_frames(src, range(count_frames(src)))
    depth = predict_depth(model, frames, progress)
    rgb = (to_model_input(frames, depth.shape[1:])[0].permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
    side_by_side = np.concatenate([rgb, colorize(depth)], axis=2)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.stem}_frames.", dir=out.parent))
    try:
        staging.chmod(creation_mode(directory=True))  # mkdtemp's is 0700
        for i, frame in enumerate(side_by_side):
            Image.fromarray(frame).save(staging / f"{i:05d}.png")
        write_video(out, side_by_side, fps=fps)
        if frames_dir.exists():  # replaced on purpose (overwrite)
            shutil.rmtree(frames_dir)
        staging.rename(frames_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # only ours; gone after the rename
    return out


def feature_file_names(videos: Sequence[Path], root: Path) -> dict[Path, str]:
    """A distinct flat file name per video: `feature_file_name`, or, where two videos would share one
    (x.mp4 and x.mkv, sub/a.mp4 and sub__a.mp4), that name with a hash of the video's path added."""
    names = {video: feature_file_name(video, root) for video in videos}
    counts = Counter(names.values())
    return {
        video: name
        if counts[name] == 1
        else f"{name.removesuffix('.safetensors')}.{content_key(video=str(video))[:8]}.safetensors"
        for video, name in names.items()
    }


def feature_file_name(video: Path, root: Path) -> str:
    """A unique, flat file name for a video below `root` (sub/dir/a.mp4 -> sub__dir__a.safetensors)."""
    try:
        relative = video.relative_to(root)
    except ValueError:
        relative = Path(video.name)
    return "__".join(relative.with_suffix("").parts) + ".safetensors"


@torch.no_grad()
def extract_features(
    encoder: SpaceTimeViT,
    videos: str | Path,
    out_dir: str | Path,
    layers: Sequence[int] | None = None,
    stride: int = 2,
    readout_depth: float = RELEASE_READOUT_DEPTH,
    progress: bool = True,
) -> tuple[list[Path], dict[Path, str]]:
    """One safetensors per readable video with the chosen feature-list entries (default: the layer at
    `readout_depth`).

    Each video contributes its centre clip at the encoder's frames and resolution. Returns the files
    written and the unreadable videos with their reasons.
    """
    c = encoder.config
    num_features = c.depth + 1
    layers = list(layers) if layers else [readout_layer_index(num_features, readout_depth)]
    outside = [i for i in layers if not -num_features <= i < num_features]
    if outside:
        raise ConfigError(
            f"--layer {' '.join(map(str, outside))}: this encoder has feature-list entries 0 to "
            f"{num_features - 1} (or -{num_features} to -1 from the end)"
        )
    layers = [i % num_features for i in layers]
    root = Path(videos) if Path(videos).is_dir() else Path(videos).parent
    transform = ClipTransform(c.image_size[0], train=False)
    device = next(encoder.parameters()).device
    written, failed = [], {}
    found = list_videos(videos)
    names = feature_file_names(found, root)
    for video in tqdm(found, desc="features", unit="video", disable=not progress):
        try:
            indices = sample_clip_indices(count_frames(video), c.num_frames, stride)
            frames = torch.from_numpy(read_frames(video, indices)).permute(0, 3, 1, 2)
        except VideoReadError as err:
            failed[video] = err.reason
            log.warning(f"skipped unreadable video {video}: {err.reason}")
            continue
        clip = transform(frames).permute(1, 0, 2, 3)[None].float().div(255).to(device)
        feats = encoder.features(clip)
        tensors = {f"layer_{i}": feats[i][0].float().cpu().contiguous() for i in layers}
        metadata = {
            "video": str(video),
            "grid": ",".join(str(n) for n in c.grid),
            "frame_indices": ",".join(str(i) for i in indices),
        }
        path = Path(out_dir) / names[video]
        written.append(atomic_write(path, lambda tmp, t=tensors, m=metadata: save_file(t, tmp, metadata=m)))
    return written, failed
