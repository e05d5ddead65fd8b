"""Hugging Face transformers video encoders (VideoMAE, V-JEPA 2, any `AutoModel` video model that returns
token features), frozen, from a folder written by `save_pretrained`: `backbone=hf:/path/to/dir`.

The clip is resized to the model's native frame count and size (nearest frames, antialiased bilinear
pixels), normalised with the mean and std of the processor saved beside the model (ImageNet's if there is
none), and the hidden state at `readout_depth` (the input of the block the official readout would read) is
handed over without the CLS token, if any, as (B, t, h*w, D)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from einops import rearrange
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from fourd.probe.backbones.base import (
    Backbone,
    BackboneError,
    as_float_video,
    block_input_index,
    file_identity,
    resize_clip,
)

PROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")
FRAMES_KEYS = ("num_frames", "frames_per_clip")  # VideoMAE, V-JEPA 2
SIZE_KEYS = ("image_size", "crop_size")
VIDEO_INPUTS = ("pixel_values_videos", "pixel_values")


def first_attribute(config: object, keys: tuple[str, ...], what: str, where: Path) -> int:
    for key in keys:
        value = getattr(config, key, None)
        if value is not None:
            return value if isinstance(value, int) else value[0]
    raise BackboneError(f"backbone hf:{where}: its config has no {what} (none of {', '.join(keys)})")


def processor_mean_std(folder: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The pixel mean and std of the processor saved in `folder`; ImageNet's where none is saved."""
    for name in PROCESSOR_FILES:
        path = folder / name
        if path.is_file():
            settings = json.loads(path.read_text())
            return (
                tuple(settings.get("image_mean", IMAGENET_DEFAULT_MEAN)),
                tuple(settings.get("image_std", IMAGENET_DEFAULT_STD)),
            )
    return IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


class HFVideoBackbone(Backbone):
    """A transformers video model and its input convention."""

    def __init__(self, name: str, folder: Path) -> None:
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder, attn_implementation="sdpa")
        super().__init__(name, file_identity(folder), model)
        self.frames = first_attribute(config, FRAMES_KEYS, "frame count", folder)
        self.size = first_attribute(config, SIZE_KEYS, "image size", folder)
        self.tubelet = getattr(config, "tubelet_size", 1)
        self.patch = first_attribute(config, ("patch_size",), "patch size", folder)
        self.num_blocks = config.num_hidden_layers
        self.hidden = config.hidden_size
        mean, std = processor_mean_std(folder)
        self.mean = torch.tensor(mean).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1, 1)
        parameters = inspect.signature(model.forward).parameters
        self.input_name = next((n for n in VIDEO_INPUTS if n in parameters), None)
        if self.input_name is None:
            raise BackboneError(f"backbone {name!r}: its forward takes none of {', '.join(VIDEO_INPUTS)}")
        self.options = {"skip_predictor": True} if "skip_predictor" in parameters else {}

    @property
    def width(self) -> int:
        return self.hidden

    def token_grid(self, clip_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        return self.frames // self.tubelet, self.size // self.patch, self.size // self.patch

    def model_input(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) clip -> the model's (B, frames, C, size, size) normalised pixels."""
        video = resize_clip(as_float_video(video), self.frames, (self.size, self.size))
        video = (video - self.mean.to(video.device)) / self.std.to(video.device)
        return rearrange(video, "b c t h w -> b t c h w")

    @torch.no_grad()
    def features(self, video: torch.Tensor) -> torch.Tensor:
        pixels = self.model_input(video)
        outputs = self.module(**{self.input_name: pixels}, output_hidden_states=True, **self.options)
        tokens = outputs.hidden_states[block_input_index(self.num_blocks, self.readout_depth)]
        t, h, w = self.token_grid(tuple(video.shape[2:]))
        extra = tokens.shape[1] - t * h * w
        if extra < 0:
            raise BackboneError(f"backbone {self.name!r}: {tokens.shape[1]} tokens for a {t}x{h}x{w} grid")
        return rearrange(tokens[:, extra:], "b (t n) d -> b t n d", t=t)


def hf_backbone(spec: str) -> HFVideoBackbone:
    """`hf:/path/to/dir` -> the model saved there with `save_pretrained`."""
    folder = Path(spec.removeprefix("hf:"))
    if not (folder / "config.json").is_file():
        raise BackboneError(f"backbone {spec!r}: {folder} holds no config.json (a save_pretrained folder)")
    try:
        import transformers  # noqa: F401
    except ImportError as err:
        raise BackboneError(f"backbone {spec!r} needs transformers: pip install 'fourd[compare]'") from err
    return HFVideoBackbone(spec, folder)
