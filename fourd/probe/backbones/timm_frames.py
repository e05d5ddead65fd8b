"""timm image models (DINOv2, SigLIP, MAE ViTs...) applied frame by frame, frozen, from a local weights file:
`backbone=timm:vit_small_patch14_dinov2@/path/weights.safetensors`.

Each frame is resized to its own size rounded to a multiple of the model's patch (as the paper feeds every model
the same clips; timm resamples the position embedding), normalised with the model's own mean and std, and the
input of the block the official readout would read at `readout_depth` is handed over without the prefix (CLS,
register) tokens, as (B, T, h*w, D)."""

from __future__ import annotations

import re
from pathlib import Path

import timm
import torch
from einops import rearrange

from fourd.errors import first_few, one_line
from fourd.probe.backbones.base import (
    Backbone,
    BackboneError,
    as_float_video,
    block_input_index,
    file_identity,
    resize_clip,
)

SIZE_MISMATCH = re.compile(
    r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[[^\]]*\])\) from checkpoint, "
    r"the shape in current model is torch\.Size\((\[[^\]]*\])\)"
)


def state_dict_problems(error: RuntimeError) -> str:
    """torch's load_state_dict error (every key, a line per kind of problem) in one short line: how many keys
    are missing, unexpected or of another shape, with the first few of each."""
    message, problems = str(error), []
    for kind, label in (("Missing", "missing"), ("Unexpected", "unexpected")):
        line = next((x for x in message.splitlines() if f"{kind} key(s) in state_dict" in x), "")
        keys = re.findall(r'"([^"]+)"', line)
        if keys:
            problems.append(f"{len(keys)} keys {label} ({first_few(keys, 3)})")
    shapes = [f"{key}: {file} in the file, {model} in the model" for key, file, model in SIZE_MISMATCH.findall(message)]
    if shapes:
        problems.append(f"{len(shapes)} of another shape ({first_few(shapes, 1)})")
    return "; ".join(problems) or one_line(error)


class TimmFramesBackbone(Backbone):
    """A timm ViT with `blocks`, run on each frame."""

    def __init__(self, name: str, model_name: str, weights: Path) -> None:
        try:
            model = timm.create_model(
                model_name, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, dynamic_img_size=True
            )
        except RuntimeError as err:  # torch's load_state_dict, naming every key
            raise BackboneError(f"backbone {name!r}: weights of another model: {state_dict_problems(err)}") from err
        if not hasattr(model, "blocks") or not hasattr(model, "patch_embed"):
            raise BackboneError(f"backbone {name!r}: {model_name} is not a ViT with patch_embed and blocks")
        super().__init__(name, f"{model_name}@{file_identity(weights)}", model)
        config = timm.data.resolve_data_config({}, model=model)
        self.mean = torch.tensor(config["mean"]).view(1, 3, 1, 1, 1)
        self.std = torch.tensor(config["std"]).view(1, 3, 1, 1, 1)
        self.patch = tuple(model.patch_embed.patch_size)

    @property
    def width(self) -> int:
        return self.module.embed_dim

    def token_grid(self, clip_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        frames, height, width = clip_shape
        return frames, max(round(height / self.patch[0]), 1), max(round(width / self.patch[1]), 1)

    def model_input(self, video: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) clip -> (B*T, C, h*p, w*p) normalised frames."""
        t, h, w = self.token_grid(tuple(video.shape[2:]))
        video = resize_clip(as_float_video(video), t, (h * self.patch[0], w * self.patch[1]))
        video = (video - self.mean.to(video.device)) / self.std.to(video.device)
        return rearrange(video, "b c t h w -> (b t) c h w")

    @torch.no_grad()
    def features(self, video: torch.Tensor) -> torch.Tensor:
        index = block_input_index(len(self.module.blocks), self.readout_depth)
        captured = []  # the block's input, prefix tokens included
        hook = self.module.blocks[index].register_forward_pre_hook(lambda _, args: captured.append(args[0]))
        try:  # runs the blocks up to `index` only
            self.module.forward_intermediates(
                self.model_input(video), indices=[index], stop_early=True, intermediates_only=True
            )
        finally:
            hook.remove()
        tokens = captured[0][:, self.module.num_prefix_tokens :]
        return rearrange(tokens, "(b t) n d -> b t n d", b=video.shape[0])


def timm_backbone(spec: str) -> TimmFramesBackbone:
    """`timm:NAME@/path/weights.safetensors` -> the timm model NAME with those weights."""
    model_name, at, weights = spec.removeprefix("timm:").partition("@")
    if not at or not model_name:
        raise BackboneError(f"backbone {spec!r}: write timm:MODEL_NAME@/path/to/weights.safetensors")
    path = Path(weights)
    if not path.is_file():
        raise BackboneError(f"backbone {spec!r}: no weights file {path}")
    if model_name not in timm.list_models():
        raise BackboneError(f"backbone {spec!r}: timm has no model {model_name!r}")
    return TimmFramesBackbone(spec, model_name, path)
