"""How the MAE is parallelised (torchtitan style): the Lightning strategy (auto, DDP, FSDP2 through
ModelParallelStrategy), the FSDP2 mesh and sharding, then activation checkpointing and compile."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, Strategy
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from fourd.errors import ConfigError
from fourd.models.mae import MAEConfig, MaskedAutoencoder
from fourd.sharding import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, shard_blocks

log = logging.getLogger(__name__)
STRATEGIES = ("auto", "ddp", "fsdp")
SHARDINGS = ("full", "hybrid")
PARAM_DTYPES = ("bfloat16", "float16", "float32")


@dataclass
class FSDPConfig:
    """How FSDP2 shards the model. `hybrid` shards inside groups of `shard_size` ranks, replicates across them."""

    sharding: str = "full"
    shard_size: int | None = None  # hybrid only; default: the devices of one node
    param_dtype: str | None = "bfloat16"  # compute dtype of gathered params on CUDA (reductions stay fp32)
    reshard_after_forward: bool = True
    cpu_offload: bool = False

    def __post_init__(self) -> None:
        if self.sharding not in SHARDINGS:
            raise ConfigError(f"unknown FSDP sharding {self.sharding!r}; choose one of {SHARDINGS}")
        if self.param_dtype is not None and self.param_dtype not in PARAM_DTYPES:
            raise ConfigError(f"unknown param_dtype {self.param_dtype!r}; choose one of {PARAM_DTYPES}")

    def shard_group_size(self, world_size: int, devices_per_node: int) -> int:
        """Ranks that share one copy of the model: all of them (full), or `shard_size` (hybrid; default one node)."""
        if self.sharding == "full":
            return world_size
        shard = self.shard_size or devices_per_node
        if world_size % shard:
            raise ConfigError(f"hybrid sharding: world size {world_size} is not a multiple of shard_size {shard}")
        return shard


def fsdp_settings(strategy: Mapping[str, Any]) -> dict[str, Any]:
    """The FSDPConfig fields that a `strategy` config group sets (the others keep their defaults)."""
    return {f.name: strategy[f.name] for f in dataclasses.fields(FSDPConfig) if f.name in strategy}


class FSDP2Strategy(ModelParallelStrategy):
    """Lightning's FSDP2 strategy, every rank data-parallel (no tensor parallel).

    Under CPU offload, setup moves only the buffers to the GPU: Lightning's `model_to_device` would move the
    host-resident parameter shards too, which FSDP2 then refuses ("should be materialized on CPU").
    """

    def __init__(self, world_size: int, cpu_offload: bool = False) -> None:
        super().__init__(data_parallel_size=world_size, tensor_parallel_size=1)
        self.cpu_offload = cpu_offload

    def model_to_device(self) -> None:
        if not self.cpu_offload:
            return super().model_to_device()
        for module in self.model.modules():
            for name, buffer in module.named_buffers(recurse=False):
                setattr(module, name, buffer.to(self.root_device))


def build_strategy(
    name: str, world_size: int, ddp_kwargs: dict[str, Any] | None = None, cpu_offload: bool = False
) -> Strategy | str:
    """Lightning strategy for a config name; `cpu_offload` for FSDP keeps the parameter shards on the host."""
    if name == "auto":
        return "auto"
    if name == "ddp":
        return DDPStrategy(**(ddp_kwargs or {}))
    if name == "fsdp":
        return FSDP2Strategy(world_size, cpu_offload)
    raise ConfigError(f"unknown strategy {name!r}; choose one of {STRATEGIES}")


def fsdp_mesh(config: FSDPConfig, world_mesh: DeviceMesh, devices_per_node: int) -> DeviceMesh:
    """1-D mesh for full sharding, or a (replicate, shard) mesh for hybrid sharding across nodes."""
    if config.sharding == "full":
        return world_mesh
    world = world_mesh.size()
    shard = config.shard_group_size(world, devices_per_node)
    return init_device_mesh(world_mesh.device_type, (world // shard, shard), mesh_dim_names=("replicate", "shard"))


def precision_policies(config: FSDPConfig, device: torch.device) -> tuple[MixedPrecisionPolicy, MixedPrecisionPolicy]:
    """(blocks', root's) mixed precision: parameters gathered in `param_dtype` on CUDA, gradients reduced in fp32.

    The root keeps its inputs as given: FSDP2 would cast the video to bf16, and the MAE's pixel targets with it,
    which DDP under autocast keeps in fp32.
    """
    use_param_dtype = config.param_dtype and device.type == "cuda"
    settings = {
        "param_dtype": getattr(torch, config.param_dtype) if use_param_dtype else None,
        "reduce_dtype": torch.float32 if use_param_dtype else None,
    }
    return MixedPrecisionPolicy(**settings), MixedPrecisionPolicy(**settings, cast_forward_inputs=False)


def shard_model(
    model: nn.Module,
    blocks: list[nn.Module],
    mesh: DeviceMesh,
    config: FSDPConfig,
    device: torch.device,
    forward_methods: tuple[str, ...] = (),
) -> None:
    """fully_shard each transformer block, then the root (patch embedding, embeddings, heads).

    `forward_methods` are root methods other than `forward` that run the model (they unshard it too).
    """
    if config.cpu_offload and device.type != "cuda":
        raise ConfigError(
            "strategy.cpu_offload needs a CUDA device: it keeps sharded parameters, gradients and "
            f"AdamW states in pinned host memory for the GPU (this run is on {device.type})"
        )
    block_policy, root_policy = precision_policies(config, device)
    offload = CPUOffloadPolicy() if config.cpu_offload else OffloadPolicy()
    shard_blocks(model, blocks, mesh, block_policy, root_policy, offload, config.reshard_after_forward, forward_methods)


def shard_device(config: FSDPConfig, device: torch.device) -> torch.device:
    """Where sharded parameters live: the host under CPU offload (FSDP2 requires it), else the compute device."""
    return torch.device("cpu") if config.cpu_offload else device


def sharding_summary(model: nn.Module) -> tuple[int, int]:
    """(parameter scalars held by this rank, parameter scalars of the whole model)."""
    local = total = 0
    for p in model.parameters():
        total += p.numel()
        local += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
    return local, total


def build_mae(
    config: MAEConfig,
    device: torch.device,
    mesh: DeviceMesh | None = None,
    fsdp: FSDPConfig | None = None,
    activation_checkpointing: bool = False,
    compile: bool = False,
) -> MaskedAutoencoder:
    """The MAE as training runs it: plain (on the ambient default device), or with a `mesh` built on the meta
    device, FSDP2-sharded and only then materialised on `device`, so giant models never exist whole on a rank;
    then activation checkpointing and compile."""
    if mesh is None:
        model = MaskedAutoencoder(config)
    else:
        fsdp = fsdp or FSDPConfig()
        with torch.device("meta"):
            model = MaskedAutoencoder(config)
        shard_model(model, model.blocks, mesh, fsdp, device, forward_methods=("reconstruct",))
        model.to_empty(device=shard_device(fsdp, device))
        model.init_weights()
    model.set_activation_checkpointing(activation_checkpointing)
    if compile:
        model.compile_for_training(per_block=mesh is not None)
    return model
