"""Models, optimisers and step closures for the benchmark: fourd as it trains, and the plain reference."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from fourd.bench.reference import ReferenceMAE
from fourd.models.mae import MAEConfig, MaskedAutoencoder
from fourd.models.vit import SpaceTimeViT, ViTConfig
from fourd.train.optim import OptimConfig, build_adamw

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@contextlib.contextmanager
def single_process_group(device: torch.device) -> Iterator[None]:
    """A one-rank process group (for FSDP2 on one device) unless one exists; torn down afterwards."""
    if dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def build_inference_encoder(
    config: ViTConfig, device: torch.device, dtype: torch.dtype, compile: bool = False
) -> SpaceTimeViT:
    """The encoder alone in eval mode with weights in `dtype`, cast on meta so fp32 weights never exist."""
    with torch.device("meta"):
        encoder = SpaceTimeViT(config).to(dtype)
    encoder.to_empty(device=device)
    encoder.init_weights()
    if compile:
        for block in encoder.blocks:
            block.compile()
    return encoder.eval()


def fourd_optimizer(model: MaskedAutoencoder, config: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """AdamW exactly as training builds it (parameter groups, fused where `build_adamw` fuses)."""
    return build_adamw(model, config, lr, model.no_weight_decay())


def reference_optimizer(model: nn.Module, config: OptimConfig, lr: float) -> torch.optim.Optimizer:
    """The hand-written baseline's AdamW: one group, a Python loop over tensors (no foreach, no fused kernel)."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=lr,
        betas=tuple(config.betas),
        weight_decay=config.weight_decay,
        foreach=False,
        fused=False,
    )


def build_reference(config: MAEConfig, device: torch.device) -> ReferenceMAE:
    """The plain reference, initialised directly on `device`."""
    with torch.device(device):
        return ReferenceMAE(config)


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bf16 autocast, or nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def train_step(
    loss: Callable[[], torch.Tensor],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    dtype: torch.dtype,
) -> Callable[[], None]:
    """One full training step: forward (autocast), backward, clip the grad norm to 1.0, optimizer step, zero grads."""

    def step() -> None:
        with autocast(device, dtype):
            value = loss()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step
