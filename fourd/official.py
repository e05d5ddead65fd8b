"""Official 4DS (flax) checkpoints: the key layout, fourd encoder and readout state dicts, and the conversion.

Official keys are '/'-joined flax paths such as
``params/encoder/patch_embedding/Conv_0/kernel`` or ``params/processor/layers_3/attention/query/kernel``
(inside the depth model the same subtree sits under ``params/layers_0/``, the readout under ``params/layers_2/``).

The *_state_from_official functions map arrays to fourd names and layouts (numpy views where the layout allows)
and hand each one to `convert` as soon as its block is mapped: by default a float32 torch tensor; a function such
as ``lambda a: a.shape`` checks a checkpoint layout without materialising its weights.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from fourd.errors import first_few
from fourd.models.depth_model import DepthConfig, DepthModel
from fourd.models.readout import ReadoutConfig
from fourd.models.sizes import RELEASE_READOUT_DEPTH
from fourd.models.vit import SpaceTimeViT, ViTConfig
from fourd.weights import CheckpointError, load_state_strict, refuse_non_finite, save_weights

ENCODER_PREFIXES = ("params/", "params/layers_0/")
READOUT_PREFIX = "params/layers_2/"  # the AttentionReadout inside the depth model's nn.Sequential
# official readout module -> fourd AttentionReadout module
_READOUT_LINEARS = {
    "key_embedding": "key",
    "value_embedding": "value",
    "Dense_0": "proj",
    "MLP_0/Dense_0": "mlp.fc1",
    "MLP_0/Dense_1": "mlp.fc2",
    "Dense_1": "head",
}
_READOUT_NORMS = {"LayerNorm_0": "norm", "LayerNorm_1": "norm_mlp"}

Converted = TypeVar("Converted")


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """A contiguous float32 torch tensor (the default `convert` of the *_state_from_official functions)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _convert(arrays: Mapping[str, np.ndarray], convert: Callable[[np.ndarray], Converted]) -> dict[str, Converted]:
    return {k: convert(v) for k, v in arrays.items()}


def find_encoder_prefix(keys: set[str]) -> str:
    """The prefix under which `encoder/` and `processor/` live (encoder-only or depth-model layout)."""
    for prefix in ENCODER_PREFIXES:
        if f"{prefix}encoder/patch_embedding/Conv_0/kernel" in keys:
            return prefix
    raise KeyError("no 4DS encoder found: expected 'params/encoder/...' or 'params/layers_0/encoder/...' keys")


def infer_encoder_config(params: Mapping[str, np.ndarray], prefix: str, num_frames: int | None = None) -> ViTConfig:
    """Encoder architecture from tensor shapes (width, depth, heads, mlp, patch, position grid)."""
    kernel = params[f"{prefix}encoder/patch_embedding/Conv_0/kernel"]  # (pt, ph, pw, C, D)
    grid = params[f"{prefix}encoder/posenc/embeddings"].shape[:3]
    blocks = f"{prefix}processor/layers_"
    depth = sum(1 for k in params if k.startswith(blocks) and k.endswith("attention/query/kernel"))
    block = f"{prefix}processor/layers_0/"
    _, heads, _ = params[f"{block}attention/query/kernel"].shape
    pt, ph, pw, in_chans, width = kernel.shape
    return ViTConfig(
        width=width,
        depth=depth,
        heads=heads,
        mlp=params[f"{block}mlp/dense_in/kernel"].shape[1],
        patch_size=(pt, ph, pw),
        num_frames=num_frames or grid[0] * pt,
        image_size=(grid[1] * ph, grid[2] * pw),
        in_chans=in_chans,
    )


def _block_state(params: Mapping[str, np.ndarray], src: str, dst: str) -> dict[str, np.ndarray]:
    """One transformer block: DenseGeneral kernels [D, heads, hd] become torch Linear weights."""
    attn = f"{src}attention/"
    width = params[f"{attn}query/kernel"].shape[0]
    qkv_w = [params[f"{attn}{n}/kernel"].reshape(width, -1).T for n in ("query", "key", "value")]
    qkv_b = [params[f"{attn}{n}/bias"].reshape(-1) for n in ("query", "key", "value")]
    return {
        f"{dst}norm1.weight": params[f"{src}attention_norm/scale"],
        f"{dst}norm1.bias": params[f"{src}attention_norm/bias"],
        f"{dst}attn.qkv.weight": np.concatenate(qkv_w, axis=0),
        f"{dst}attn.qkv.bias": np.concatenate(qkv_b, axis=0),
        f"{dst}attn.proj.weight": params[f"{attn}out/kernel"].reshape(-1, width).T,
        f"{dst}attn.proj.bias": params[f"{attn}out/bias"],
        f"{dst}norm2.weight": params[f"{src}mlp_norm/scale"],
        f"{dst}norm2.bias": params[f"{src}mlp_norm/bias"],
        f"{dst}mlp.fc1.weight": params[f"{src}mlp/dense_in/kernel"].T,
        f"{dst}mlp.fc1.bias": params[f"{src}mlp/dense_in/bias"],
        f"{dst}mlp.fc2.weight": params[f"{src}mlp/dense_out/kernel"].T,
        f"{dst}mlp.fc2.bias": params[f"{src}mlp/dense_out/bias"],
    }


def official_block_keys(prefix: str, index: int) -> list[str]:
    """Every official key consumed by block `index`."""
    src = f"{prefix}processor/layers_{index}/"
    names = [f"attention/{n}/{p}" for n in ("query", "key", "value", "out") for p in ("kernel", "bias")]
    names += [f"{n}/{p}" for n in ("attention_norm", "mlp_norm") for p in ("scale", "bias")]
    names += [f"mlp/{n}/{p}" for n in ("dense_in", "dense_out") for p in ("kernel", "bias")]
    return [src + n for n in names]


def encoder_state_from_official(
    params: Mapping[str, np.ndarray],
    prefix: str,
    depth: int,
    convert: Callable[[np.ndarray], Converted] = to_tensor,
) -> tuple[dict[str, Converted], set[str]]:
    """fourd encoder state dict from official arrays, and the set of official keys it consumed."""
    state = _convert(
        {
            "patch_embed.weight": params[f"{prefix}encoder/patch_embedding/Conv_0/kernel"].transpose(4, 3, 0, 1, 2),
            "patch_embed.bias": params[f"{prefix}encoder/patch_embedding/Conv_0/bias"],
            "pos_embed": params[f"{prefix}encoder/posenc/embeddings"],
        },
        convert,
    )
    used = {
        f"{prefix}encoder/patch_embedding/Conv_0/kernel",
        f"{prefix}encoder/patch_embedding/Conv_0/bias",
        f"{prefix}encoder/posenc/embeddings",
    }
    for i in range(depth):
        state.update(_convert(_block_state(params, f"{prefix}processor/layers_{i}/", f"blocks.{i}."), convert))
        used.update(official_block_keys(prefix, i))
    return state, used


def infer_readout_config(
    params: Mapping[str, np.ndarray],
    prefix: str = READOUT_PREFIX,
    encoder_width: int | None = None,
    num_frames: int | None = None,
    readout_depth: float = RELEASE_READOUT_DEPTH,
    output_patch: tuple[int, int, int] = (2, 8, 8),
) -> ReadoutConfig:
    """Readout architecture from tensor shapes; `encoder_width` and `num_frames`, when given, are checked."""
    width_in, heads, head_dim = params[f"{prefix}key_embedding/kernel"].shape
    frames = params[f"{prefix}temporal_posenc/embeddings"].shape[0]
    for name, given, found in (("encoder_width", encoder_width, width_in), ("num_frames", num_frames, frames)):
        if given is not None and given != found:
            raise ValueError(f"{name} {given} does not match the checkpoint's readout ({found})")
    num_classes = params[f"{prefix}Dense_1/kernel"].shape[1]
    channels, rest = divmod(num_classes, math.prod(output_patch))
    if rest:
        raise ValueError(f"{num_classes} outputs per query are not a multiple of the output patch {output_patch}")
    return ReadoutConfig(
        width=heads * head_dim,
        heads=heads,
        num_queries=params[f"{prefix}query"].shape[0],
        num_classes=num_classes,
        mlp=params[f"{prefix}MLP_0/Dense_0/kernel"].shape[1],
        num_frames=frames,
        readout_depth=readout_depth,
        output_patch=output_patch,
        output_channels=channels,
        encoder_width=width_in,
    )


def official_readout_keys(prefix: str = READOUT_PREFIX) -> list[str]:
    """Every official key of the AttentionReadout."""
    keys = [f"{prefix}{name}/{p}" for name in _READOUT_LINEARS for p in ("kernel", "bias")]
    keys += [f"{prefix}{name}/{p}" for name in _READOUT_NORMS for p in ("scale", "bias")]
    return keys + [f"{prefix}query", f"{prefix}temporal_posenc/embeddings"]


def readout_state_from_official(
    params: Mapping[str, np.ndarray],
    prefix: str = READOUT_PREFIX,
    convert: Callable[[np.ndarray], Converted] = to_tensor,
) -> tuple[dict[str, Converted], set[str]]:
    """fourd AttentionReadout state dict from official arrays, and the set of official keys it consumed.

    DenseGeneral kernels (D, heads, P/heads) and the query (Q, heads, P/heads) flatten to P with heads slowest.
    """
    query = params[f"{prefix}query"]
    state = {
        "query": query.reshape(query.shape[0], -1),
        "temporal_posenc": params[f"{prefix}temporal_posenc/embeddings"],
    }
    for src, dst in _READOUT_LINEARS.items():
        kernel = params[f"{prefix}{src}/kernel"]
        state[f"{dst}.weight"] = kernel.reshape(kernel.shape[0], -1).T
        state[f"{dst}.bias"] = params[f"{prefix}{src}/bias"].reshape(-1)
    for src, dst in _READOUT_NORMS.items():
        state[f"{dst}.weight"] = params[f"{prefix}{src}/scale"]
        state[f"{dst}.bias"] = params[f"{prefix}{src}/bias"]
    return _convert(state, convert), set(official_readout_keys(prefix))


def official_model_config(
    params: Mapping[str, np.ndarray],
    num_frames: int | None = None,
    readout_depth: float = RELEASE_READOUT_DEPTH,
    output_patch: tuple[int, int, int] = (2, 8, 8),
) -> ViTConfig | DepthConfig:
    """The architecture of an official checkpoint: an encoder, or encoder + depth readout (depth layout).

    Shapes give everything but the readout depth and the output patch, which default to the release.
    """
    prefix = find_encoder_prefix(set(params))
    if f"{READOUT_PREFIX}query" not in params:
        return infer_encoder_config(params, prefix, num_frames)
    encoder_width = params[f"{prefix}encoder/posenc/embeddings"].shape[-1]
    readout = infer_readout_config(params, READOUT_PREFIX, encoder_width, num_frames, readout_depth, output_patch)
    return DepthConfig(infer_encoder_config(params, prefix, readout.num_frames), readout)


def official_state(
    params: Mapping[str, np.ndarray],
    config: ViTConfig | DepthConfig,
    convert: Callable[[np.ndarray], Converted] = to_tensor,
) -> tuple[dict[str, Converted], set[str]]:
    """State dict of the fourd model for `config` (SpaceTimeViT or DepthModel) and every official key consumed."""
    prefix = find_encoder_prefix(set(params))
    if isinstance(config, ViTConfig):
        return encoder_state_from_official(params, prefix, config.depth, convert)
    encoder, used_encoder = encoder_state_from_official(params, prefix, config.encoder.depth, convert)
    readout, used_readout = readout_state_from_official(params, READOUT_PREFIX, convert)
    state = {**{f"encoder.{k}": v for k, v in encoder.items()}, **{f"readout.{k}": v for k, v in readout.items()}}
    return state, used_encoder | used_readout


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file; a clear error for a missing, truncated or non-npz file."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder: name the official .npz file (e.g. scaling4d_dist_b_depth.npz)")
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if not zipfile.is_zipfile(path):  # numpy would read it as a pickle and advise allow_pickle
        raise CheckpointError(f"{path} is not a readable .npz checkpoint: no zip archive (truncated, or another file)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint (truncated or corrupt?): {err}") from err


def build_official_model(config: ViTConfig | DepthConfig) -> SpaceTimeViT | DepthModel:
    with torch.device("meta"):
        return DepthModel(config) if isinstance(config, DepthConfig) else SpaceTimeViT(config)


def convert_official(
    src: str | Path,
    dst: str | Path,
    num_frames: int | None = None,
    readout_depth: float = RELEASE_READOUT_DEPTH,
    output_patch: tuple[int, int, int] = (2, 8, 8),
) -> Path:
    """Convert an official .npz to fourd safetensors (config in metadata); raises before writing on any mismatch."""
    if Path(dst).resolve() == Path(src).resolve():
        raise CheckpointError(f"the output {dst} is the source checkpoint: choose another output file")
    params = read_npz(src)
    not_float = sorted(k for k, v in params.items() if not np.issubdtype(v.dtype, np.floating))
    if not_float:
        raise CheckpointError(f"{src}: {len(not_float)} arrays are not floating point: {first_few(not_float, 8)}")
    refuse_non_finite(src, ((k, torch.from_numpy(v)) for k, v in params.items()))
    try:
        config = official_model_config(params, num_frames, readout_depth, output_patch)
        state, used = official_state(params, config)
    except KeyError as err:
        raise CheckpointError(f"{src} is not a 4DS checkpoint: missing key {err}") from err
    except ValueError as err:
        raise CheckpointError(f"{src}: {err}") from err
    unused = sorted(set(params) - used)
    if unused:
        raise CheckpointError(f"{src}: {len(unused)} keys not consumed by the inferred model: {first_few(unused, 8)}")
    model = build_official_model(config)
    load_state_strict(model, state, str(src), check_only=True)
    kind = "depth" if isinstance(config, DepthConfig) else "encoder"
    return save_weights(dst, state, kind, config.to_dict(), extra={"source": Path(src).name})
