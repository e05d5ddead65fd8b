"""A training checkpoint -> one unwrapped safetensors (the encoder, or the whole MAE), read on the CPU.

Reads a `step_<N>.ckpt` file (single device, DDP), a sharded `step_<N>.ckpt` directory of DCP shards
(strategy=fsdp), or a run directory (its newest complete checkpoint), without a process group and without
the optimizer state. The output carries its config in the metadata and loads with `fourd.load`.
"""

from __future__ import annotations

import inspect
import json
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from fourd.errors import ConfigError, one_line
from fourd.models.mae import MAEConfig, MaskedAutoencoder
from fourd.models.vit import SpaceTimeViT
from fourd.train.checkpoints import CHECKPOINTS, DCP_METADATA, latest_checkpoint
from fourd.weights import CheckpointError, load_state_strict, save_weights, strip_wrapper_prefixes

WHATS = ("encoder", "mae")
LIGHTNING_META = "meta.pt"  # Lightning's non-tensor state (hyper_parameters, global_step, ...) of a DCP checkpoint
DCP_MODEL = "state_dict."  # Lightning saves {"state_dict": module state, "optimizer_0": ...}; DCP flattens the keys
MODEL = "model."  # TrainModule keeps the MaskedAutoencoder at attribute `model`


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint itself, or the newest complete one of a run directory or of its checkpoints/ folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.is_dir() and not (path / DCP_METADATA).is_file():
        for folder in (path / CHECKPOINTS, path):
            latest = latest_checkpoint(folder)
            if latest is not None:
                return latest
        raise CheckpointError(
            f"{path} is not a checkpoint (a sharded one has a {DCP_METADATA} file) and holds "
            "no complete step_*.ckpt checkpoint"
        )
    return path


def torch_load(path: Path) -> dict[str, Any]:
    """A torch.save archive as plain data (weights_only: no code runs), memory-mapped so unused tensors stay on disk."""
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (not a torch.save archive)")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} is not a readable Lightning checkpoint: {one_line(err)}") from err
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path} is not a Lightning checkpoint (holds a {type(loaded).__name__}, not a dict)")
    return loaded


def read_sharded_model(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The module tensors under `prefix` of a DCP checkpoint directory, assembled from all shards on the CPU."""
    reader = FileSystemReader(str(path))
    try:
        metadata = reader.read_metadata()
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{path}: unreadable {DCP_METADATA}: {one_line(err)}") from err
    wanted = {
        key: torch.empty(meta.size, dtype=meta.properties.dtype)
        for key, meta in metadata.state_dict_metadata.items()
        if isinstance(meta, TensorStorageMetadata)
        and key.startswith(DCP_MODEL)
        and strip_wrapper_prefixes(key.removeprefix(DCP_MODEL)).startswith(prefix)
    }
    if not wanted:
        raise CheckpointError(f"{path} holds no model weights ({DCP_MODEL}{prefix}*)")
    no_dist = {"no_dist": True} if "no_dist" in inspect.signature(dcp.load).parameters else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "torch.distributed is ... uninitialized, assuming ... a single process"
            dcp.load(wanted, storage_reader=reader, **no_dist)
    except (CheckpointException, OSError, RuntimeError, ValueError, EOFError) as err:
        raise CheckpointError(f"{path}: could not read its shards: {one_line(err)}") from err
    return {key.removeprefix(DCP_MODEL): tensor for key, tensor in wanted.items()}


def read_training_checkpoint(path: str | Path, prefix: str = MODEL) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(module tensors whose unwrapped names start with `prefix`, Lightning's other state) of a checkpoint."""
    path = Path(path)
    if path.is_dir():
        if not (path / LIGHTNING_META).is_file():
            raise CheckpointError(f"{path} is a sharded checkpoint without its {LIGHTNING_META} (hyper-parameters)")
        meta = torch_load(path / LIGHTNING_META)
        state = read_sharded_model(path, prefix)
    else:
        meta = torch_load(path)
        module_state = meta.pop("state_dict", None)
        if not isinstance(module_state, dict):
            raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
        state = {k: v for k, v in module_state.items() if strip_wrapper_prefixes(k).startswith(prefix)}
    return {strip_wrapper_prefixes(k): v for k, v in state.items()}, meta


def training_config(meta: dict[str, Any], source: Path) -> MAEConfig:
    """The MAE config a fourd TrainModule stored in its hyper-parameters."""
    hparams = meta.get("hyper_parameters")
    if not isinstance(hparams, dict) or not isinstance(hparams.get("model"), dict):
        raise CheckpointError(f"{source} was not written by fourd pretraining (no 'model' in its hyper_parameters)")
    try:
        return MAEConfig.from_dict(hparams["model"])
    except (TypeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{source}: invalid MAE config in its hyper_parameters: {one_line(err)}") from err


def export_checkpoint(src: str | Path, dst: str | Path, what: str = "encoder") -> Path:
    """Write the encoder (or the whole MAE) of a pretraining checkpoint to one safetensors; nothing on any error."""
    if what not in WHATS:
        raise ConfigError(f"unknown export {what!r}; choose one of {WHATS}")
    path = resolve_checkpoint(src)
    prefix = MODEL + "encoder." if what == "encoder" else MODEL
    state, meta = read_training_checkpoint(path, prefix)
    config = training_config(meta, path)
    state = {k.removeprefix(prefix): v for k, v in state.items()}
    with torch.device("meta"):
        model = SpaceTimeViT(config.encoder) if what == "encoder" else MaskedAutoencoder(config)
    load_state_strict(model, state, str(path), check_only=True)
    model_config = config.encoder.to_dict() if what == "encoder" else config.to_dict()
    extra = {
        "mae_config": json.dumps(config.to_dict()),
        "global_step": str(meta.get("global_step", "")),
        "source": path.name,
    }
    try:
        return save_weights(dst, state, what, model_config, extra)
    except OSError as err:
        raise CheckpointError(f"cannot write {dst}: {one_line(err)}") from err
