"""Spatial augmentation of whole clips: one crop and one flip shared by every frame, applied clip by clip in the
data workers, or drawn there and applied to a whole batch at once on the training device (`crop_batch`)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torchvision.ops import roi_align
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

AUGMENT_PLACES = ("workers", "device")
ASPECT_RATIOS = (3 / 4, 4 / 3)  # torchvision's RandomResizedCrop default


class Crop(NamedTuple):
    """A crop box in frame pixels and whether to flip it horizontally."""

    top: int
    left: int
    height: int
    width: int
    flip: bool


class ClipTransform:
    """uint8 (T, C, H, W) -> uint8 (T, C, size, size).

    Train: random resized crop and horizontal flip, drawn as torchvision's RandomResizedCrop and
    RandomHorizontalFlip draw them (from torch's global generator). Eval: resize the short side to ``size``,
    centre crop. All frames of a clip get the same crop and flip.
    """

    def __init__(
        self, size: int, train: bool = True, scale: tuple[float, float] = (0.4, 1.0), flip: bool = True
    ) -> None:
        self.size, self.train, self.scale, self.flip = size, train, scale, flip
        self.resize_and_centre = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def draw(self, height: int, width: int) -> Crop:
        """The crop of one clip of frames `height` × `width`: random in training, the centred square in eval."""
        if not self.train:
            side = min(height, width)
            return Crop((height - side) // 2, (width - side) // 2, side, side, False)
        box = v2.RandomResizedCrop.get_params(torch.empty(0, height, width), list(self.scale), list(ASPECT_RATIOS))
        return Crop(*box, self.flip and bool(torch.rand(1) < 0.5))

    def apply(self, clip: torch.Tensor, crop: Crop) -> torch.Tensor:
        """`crop` of (T, C, H, W) `clip`, resized (antialiased bilinear) to size × size, flipped if it says so."""
        out = TF.resized_crop(clip, crop.top, crop.left, crop.height, crop.width, [self.size] * 2, antialias=True)
        return TF.horizontal_flip(out) if crop.flip else out

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.dtype != torch.uint8 or clip.dim() != 4:
            raise ValueError(f"expected a uint8 clip (T, C, H, W), got {clip.dtype} {tuple(clip.shape)}")
        if not self.train:
            return self.resize_and_centre(clip)
        return self.apply(clip, self.draw(*clip.shape[-2:]))

    def clips(self, frames: torch.Tensor, repeats: int, augment: str) -> dict[str, torch.Tensor]:
        """A dataset item's clips of uint8 (T, H, W, C) `frames`, `repeats` of them.

        augment="workers": "video", cropped here, (C, T, size, size), or (repeats, C, T, size, size) for repeats > 1.
        augment="device": the "frames" as they are and their "crops" (repeats, 5) for `crop_batch` to apply.
        """
        if augment == "device":
            crops = [self.draw(*frames.shape[1:3]) for _ in range(repeats)]
            return {"frames": frames, "crops": torch.tensor(crops, dtype=torch.int64)}
        clip = frames.permute(0, 3, 1, 2)  # (T, C, H, W)
        clips = [self(clip).permute(1, 0, 2, 3) for _ in range(repeats)]
        return {"video": clips[0].contiguous() if repeats == 1 else torch.stack(clips)}


def check_augment(augment: str) -> str:
    if augment not in AUGMENT_PLACES:
        raise ValueError(f"augment={augment!r}: choose one of {AUGMENT_PLACES}")
    return augment


def pad_frames(frames: list[torch.Tensor]) -> torch.Tensor:
    """Videos' (T, H, W, C) frames of different sizes as one (B, T, H_max, W_max, C) tensor, each padded by repeating
    its last row and column, so that sampling at a frame's edge never reads another frame's pixels."""
    t, c = frames[0].shape[0], frames[0].shape[3]
    height, width = max(f.shape[1] for f in frames), max(f.shape[2] for f in frames)
    out = torch.empty(len(frames), t, height, width, c, dtype=frames[0].dtype)
    for video, f in zip(out, frames, strict=True):
        h, w = f.shape[1:3]
        video[:, :h, :w] = f
        video[:, :h, w:] = f[:, :, -1:]
        video[:, h:] = video[:, h - 1 : h]
    return out


def crop_batch(frames: torch.Tensor, crops: torch.Tensor, size: int) -> torch.Tensor:
    """Every clip of a batch at once, on the frames' device: uint8 (B, T, H, W, C) frames and their (B, k, 5) crops
    (top, left, height, width, flip) -> uint8 (B * k, C, T, size, size) clips.

    One `roi_align` call resizes every crop of every frame (bilinear, averaging ceil(crop / size) samples per output
    pixel and axis, so a downscale is antialiased); the flips are one `torch.where`.
    """
    b, t, h, w, c = frames.shape
    k = crops.shape[1]
    images = frames.permute(0, 1, 4, 2, 3).reshape(b * t, c, h, w).float()
    top, left, height, width, flip = crops.to(images.device).unbind(-1)  # each (B, k)
    image = torch.arange(b * t, device=images.device).view(b, 1, t).expand(b, k, t)
    box = torch.stack([left, top, left + width, top + height], -1)[:, :, None].expand(b, k, t, 4)
    rois = torch.cat([image[..., None], box], -1).reshape(-1, 5).float()
    out = roi_align(images, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    out = out.view(b, k, t, c, size, size)
    out = torch.where(flip.bool().view(b, k, 1, 1, 1, 1), out.flip(-1), out)
    video = out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 1, 3, 2, 4, 5)  # (B, k, C, T, size, size)
    return video.reshape(b * k, c, t, size, size)
