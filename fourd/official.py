"""Official 4DS (flax) checkpoint layout -> fourd encoder state dict.

Official keys are '/'-joined flax paths such as
``params/encoder/patch_embedding/Conv_0/kernel`` or ``params/processor/layers_3/attention/query/kernel``
(inside the depth model the same subtree sits under ``params/layers_0/``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from fourd.models.vit import ViTConfig

ENCODER_PREFIXES = ("params/", "params/layers_0/")


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
    params: Mapping[str, np.ndarray], prefix: str, depth: int
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """fourd encoder state dict from official arrays, and the set of official keys it consumed."""
    state = {
        "patch_embed.weight": params[f"{prefix}encoder/patch_embedding/Conv_0/kernel"].transpose(4, 3, 0, 1, 2),
        "patch_embed.bias": params[f"{prefix}encoder/patch_embedding/Conv_0/bias"],
        "pos_embed": params[f"{prefix}encoder/posenc/embeddings"],
    }
    used = {f"{prefix}encoder/patch_embedding/Conv_0/kernel", f"{prefix}encoder/patch_embedding/Conv_0/bias",
            f"{prefix}encoder/posenc/embeddings"}
    for i in range(depth):
        state.update(_block_state(params, f"{prefix}processor/layers_{i}/", f"blocks.{i}."))
        used.update(official_block_keys(prefix, i))
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}, used
