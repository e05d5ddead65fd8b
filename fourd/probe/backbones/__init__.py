"""Frozen backbones for probes: fourd's own (a fourd safetensors, `random`, `pixels`, `trivial`) and foreign
ones through adapters (`hf:` transformers video models, `timm:` image models frame by frame)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fourd.probe.backbones.base import BASELINES, Backbone, BackboneError, as_float_video, block_input_index
from fourd.probe.backbones.native import PixelsBackbone, TrivialBackbone, file_backbone, random_backbone

__all__ = [
    "BASELINES",
    "Backbone",
    "BackboneError",
    "as_float_video",
    "backbone_label",
    "block_input_index",
    "load_backbone",
]


def load_backbone(
    spec: str, random_arch: Mapping[str, Any], seed: int = 0, readout_depth: float = Backbone.readout_depth
) -> Backbone:
    """The backbone `spec` names, reading its features at `readout_depth`."""
    backbone = build_backbone(spec, random_arch, seed)
    backbone.readout_depth = readout_depth
    return backbone


def build_backbone(spec: str, random_arch: Mapping[str, Any], seed: int) -> Backbone:
    """`trivial`, `pixels`, `random` (a freshly initialised encoder of `random_arch`, a `model` config group,
    drawn from `seed`), `hf:<save_pretrained folder>`, `timm:<model name>@<weights file>`, or the path of a
    fourd safetensors file."""
    if spec == "trivial":
        return TrivialBackbone()
    if spec == "pixels":
        return PixelsBackbone()
    if spec == "random":
        return random_backbone(random_arch, seed)
    if spec.startswith("hf:"):
        from fourd.probe.backbones.hf_video import hf_backbone

        return hf_backbone(spec)
    if spec.startswith("timm:"):
        from fourd.probe.backbones.timm_frames import timm_backbone

        return timm_backbone(spec)
    if not Path(spec).is_file():
        raise BackboneError(
            f"backbone {spec!r} is none of {', '.join(BASELINES)}, hf:<folder>, timm:<model>@<weights> "
            "and not an existing .safetensors file"
        )
    return file_backbone(spec)


def backbone_label(spec: str) -> str:
    """A short name for plots: `hf: <folder name>`, `timm: <model name>`, a fourd file's folder, or the baseline."""
    if spec.startswith("hf:"):
        return f"hf: {Path(spec.removeprefix('hf:')).name}"
    if spec.startswith("timm:"):
        return f"timm: {spec.removeprefix('timm:').partition('@')[0]}"
    return Path(spec).parent.name or spec
