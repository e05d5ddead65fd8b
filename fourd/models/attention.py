"""Scaled dot-product attention behind one switch: xformers, PyTorch SDPA, or a plain reference.

All backends take and return tensors laid out (batch, tokens, heads, head_dim) and scale queries by
1/sqrt(head_dim), as the official model does.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
import torch.nn.functional as F

Backend = Literal["auto", "xformers", "sdpa", "reference"]
BACKENDS: tuple[str, ...] = ("auto", "xformers", "sdpa", "reference")


@functools.cache
def xformers_available() -> bool:
    """True when xformers imports and its memory-efficient kernel actually runs on this CUDA device."""
    if not torch.cuda.is_available():
        return False
    try:
        from xformers.ops import memory_efficient_attention

        q = torch.zeros(1, 8, 1, 64, device="cuda", dtype=torch.bfloat16)
        memory_efficient_attention(q, q, q)
        return True
    except Exception:  # ImportError, missing kernels for this GPU/arch, ...
        return False


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype = torch.float32) -> str:
    """Turn 'auto' into the fastest backend usable on `device`; reject unknown or unusable choices.

    On CPU in bf16/fp16 'auto' takes the explicit product, which beats SDPA's CPU flash kernel there
    (docs/performance.md).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown attention backend {backend!r}; choose one of {BACKENDS}")
    if backend == "auto":
        if device.type == "cuda" and xformers_available():
            return "xformers"
        return "reference" if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16) else "sdpa"
    if backend == "xformers" and not (device.type == "cuda" and xformers_available()):
        raise RuntimeError("attention backend 'xformers' needs CUDA and a working xformers install")
    return backend


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Explicit softmax(q k^T / sqrt(d)) v with the softmax in float32 (readable; stores the N x N weights)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    logits = torch.einsum("bqhd,bkhd->bhqk", q * scale, k)
    weights = logits.float().softmax(dim=-1).to(v.dtype)
    return torch.einsum("bhqk,bkhd->bqhd", weights, v)


def dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Attention over (B, N, H, Dh) tensors with the chosen backend; returns (B, Nq, H, Dh)."""
    backend = resolve_backend(backend, q.device, q.dtype)
    if backend == "xformers":
        from xformers.ops import memory_efficient_attention

        return memory_efficient_attention(q, k, v)
    if backend == "sdpa":
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return out.transpose(1, 2)
    return reference_attention(q, k, v)
