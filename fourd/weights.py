"""Weights on disk: every kind of file fourd writes (encoder, depth model, whole MAE) as safetensors with the
model config in the metadata, written atomically, and one `load` that reads them all."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from fourd.errors import FourdError, first_few
from fourd.files import atomic_write
from fourd.models.depth_model import DepthConfig, DepthModel
from fourd.models.mae import MAEConfig, MaskedAutoencoder
from fourd.models.sizes import RELEASE_READOUT_DEPTH
from fourd.models.vit import SpaceTimeViT, ViTConfig

FORMAT = "fourd"
MODELS: dict[str, tuple[type, type]] = {  # kind -> (config class, model class)
    "encoder": (ViTConfig, SpaceTimeViT),
    "depth": (DepthConfig, DepthModel),
    "mae": (MAEConfig, MaskedAutoencoder),
}
Model = SpaceTimeViT | DepthModel | MaskedAutoencoder
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_forward_module.", "_checkpoint_wrapped_module.")


class CheckpointError(FourdError, ValueError):
    """A weights file that does not fit the model it claims to hold."""


def strip_wrapper_prefixes(name: str) -> str:
    """'module._orig_mod.blocks.0...' -> 'blocks.0...' (DDP, torch.compile and wrapper prefixes)."""
    return ".".join(part for part in name.split(".") if f"{part}." not in WRAPPER_PREFIXES)


def save_weights(
    path: str | Path,
    state: Mapping[str, torch.Tensor],
    kind: str,
    config: Mapping[str, Any],
    extra: Mapping[str, str] | None = None,
) -> Path:
    """Write tensors (unwrapped names, contiguous, CPU) with {format, kind, config} metadata."""
    tensors = {strip_wrapper_prefixes(k): v.detach().to("cpu").contiguous() for k, v in state.items()}
    metadata = {"format": FORMAT, "kind": kind, "config": json.dumps(config), **(extra or {})}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def conversion_hint(path: Path) -> str | None:
    """The command that turns a file fourd cannot load directly into one it can (None: no known format)."""
    if path.is_dir() and (path / ".metadata").is_file():
        return f"a sharded training checkpoint: export it first with `python -m fourd.export {path}`"
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(name.endswith(".npy") for name in names):
        return f"an .npz (official 4DS?) checkpoint: convert it with `python -m fourd.convert {path} OUT.safetensors`"
    if any(name.endswith("data.pkl") for name in names):
        return f"a torch.save file (a training checkpoint?): export it first with `python -m fourd.export {path}`"
    return None


def weights_file(path: str | Path) -> Path:
    """`path` if it is a file that may be safetensors; a clear error for a missing or other-format one."""
    path = Path(path)
    hint = conversion_hint(path) if path.exists() else None
    if hint is not None:
        raise CheckpointError(f"{path} is not a safetensors file but {hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    return path


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a clear error for missing, corrupt or other-format files."""
    path = weights_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err


def load_state_strict(module: nn.Module, state: Mapping[str, Any], source: str, check_only: bool = False) -> None:
    """load_state_dict that names every missing, unexpected and wrongly shaped key in one error.

    With `check_only` nothing is loaded (e.g. for a model on the meta device).
    """
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or shapes:
        problems = [
            f"{label} ({len(keys)}): {first_few(keys, 8)}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
            if keys
        ]
        raise CheckpointError(f"{source} does not match the model: " + "; ".join(problems))
    if not check_only:
        module.load_state_dict(state, strict=True)


def model_description(path: str | Path, metadata: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """(kind, config) that a fourd file's metadata gives."""
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path} has no fourd metadata (format/config); convert official .npz files first")
    try:
        return metadata.get("kind", "encoder"), json.loads(metadata["config"])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: its fourd metadata 'config' is not valid JSON ({err})") from err


def build_model(kind: str, config: dict[str, Any]) -> Model:
    """The model a file's metadata describes: kind 'encoder', 'depth' or 'mae'."""
    if kind not in MODELS:
        raise CheckpointError(f"unknown model kind {kind!r} (expected one of {', '.join(MODELS)})")
    config_class, model_class = MODELS[kind]
    return model_class(config_class.from_dict(config))


def load(path: str | Path, **encoder_overrides: Any) -> Model:
    """Load any fourd safetensors file (ours, an export, or converted from an official .npz) in eval mode.

    Returns the encoder, the DepthModel (encoder + readout) or the MaskedAutoencoder (`fourd.export --what mae`),
    as the file's metadata says. `encoder_overrides` change encoder config fields that do not affect weights,
    e.g. attn_backend="reference".
    """
    state, metadata = read_weights(path)
    refuse_non_finite(path, state.items())
    kind, config = model_description(path, metadata)
    if encoder_overrides:
        if kind == "encoder":
            config = {**config, **encoder_overrides}
        else:
            config["encoder"] = {**config["encoder"], **encoder_overrides}
    model = described_model(path, kind, config)
    load_state_strict(model, state, str(path))
    return model.eval()


def checked_encoder_config(path: str | Path) -> ViTConfig:
    """The config of the encoder a fourd file holds, after every check `load` makes (metadata, keys, shapes,
    finite values), reading one tensor at a time and keeping none."""
    path = weights_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
            refuse_non_finite(path, ((k, f.get_tensor(k)) for k in f.keys()))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file: {err}") from err
    with torch.device("meta"):
        model = described_model(path, *model_description(path, metadata))
        load_state_strict(model, {k: torch.empty(s) for k, s in shapes.items()}, str(path), check_only=True)
    return (model if isinstance(model, SpaceTimeViT) else model.encoder).config


def refuse_non_finite(path: str | Path, tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
    non_finite = sorted(k for k, v in tensors if v.is_floating_point() and not torch.isfinite(v).all())
    if non_finite:
        raise CheckpointError(f"{path} holds nan or inf in {len(non_finite)} tensors: {first_few(non_finite, 8)}")


def described_model(path: str | Path, kind: str, config: dict[str, Any]) -> Model:
    """The model a file's (kind, config) describes, or a CheckpointError naming the file."""
    try:
        return build_model(kind, config)
    except (TypeError, ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: the config in its metadata is invalid: {err}") from err


def load_encoder(path: str | Path, **encoder_overrides: Any) -> SpaceTimeViT:
    """The encoder of any fourd safetensors file (an encoder, a depth model or an MAE), in eval mode."""
    return encoder_of(load(path, **encoder_overrides))


def encoder_of(model: Model) -> SpaceTimeViT:
    """The encoder of a loaded model (itself, for an encoder)."""
    return model if isinstance(model, SpaceTimeViT) else model.encoder


def readout_depth_of(model: Model) -> float:
    """The relative depth of the feature the model's own readout reads: a depth model's; the release's else."""
    return model.config.readout.readout_depth if isinstance(model, DepthModel) else RELEASE_READOUT_DEPTH
