"""Per-GPU memory plan of MAE pretraining: weights, gradients, AdamW states, FSDP working copies, activations.

Everything is analytic from the model shapes, with parameter counts taken from the model built on the meta
device. Activations are what autograd saves between the forward and the backward pass, counted tensor by tensor
for fused attention (SDPA / xformers: q, k, v, output and log-sum-exp, never the N x N weights).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from math import ceil, prod

import torch
from torch import nn

from fourd.errors import ConfigError
from fourd.models.mae import MAEConfig, MaskedAutoencoder
from fourd.train.parallelize import STRATEGIES, FSDPConfig
from fourd.train.precision import resolve_precision

GiB = 1024**3
FRAMEWORK_OVERHEAD_BYTES = 2 * GiB  # CUDA context, cuBLAS / NCCL workspaces and buffers, framework bookkeeping
FRAGMENTATION_MARGIN = 0.10  # caching-allocator fragmentation and short-lived buffers, a fraction of tensor bytes
ACTIVATION_BYTES = {"32-true": 4, "bf16-mixed": 2, "16-mixed": 2}  # bytes per element of autocast activations
F32 = 4
I64 = 8


@dataclass(frozen=True)
class TrainSetup:
    """How each device runs a training step (the `strategy` and `trainer` config groups, resolved)."""

    strategy: str = "auto"  # auto | ddp: a full replica per device; fsdp: FSDP2, each block and the root a unit
    world_size: int = 1
    devices_per_node: int | None = None  # None: every rank on one node
    precision: str = "bf16-mixed"  # a Lightning precision; auto is bf16-mixed (the plan is for a GPU)
    activation_checkpointing: bool = False
    fsdp: FSDPConfig = field(default_factory=FSDPConfig)  # how strategy fsdp shards

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; choose one of {STRATEGIES}")
        if self.world_size < 1:
            raise ConfigError(f"the run needs at least 1 device, got a world size of {self.world_size}")
        object.__setattr__(self, "precision", resolve_precision(self.precision, bf16_gpu=True))
        if self.fsdp.cpu_offload and not self.sharded:
            raise ConfigError("cpu_offload needs strategy fsdp")
        self.shards  # noqa: B018  (validates the shard group against the world size)

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp"

    @property
    def shards(self) -> int:
        """Ranks that share one copy of the parameters, gradients and optimizer states."""
        if not self.sharded:
            return 1
        return self.fsdp.shard_group_size(self.world_size, self.devices_per_node or self.world_size)


@dataclass(frozen=True)
class ParamCounts:
    """Parameter scalars of an MAE, as the memory plan needs them."""

    total: int
    shapes: tuple[tuple[int, ...], ...]  # every parameter, for FSDP's dim-0 shards
    largest_block: int  # the largest FSDP unit among the transformer blocks
    root: int  # everything outside the blocks: the FSDP root unit
    matmul_weights: int  # linear weights: autocast's low-precision copies that autograd keeps (the tubelet
    # embedding's copy is not kept: its input, the video, needs no gradient)


def param_counts(config: MAEConfig) -> ParamCounts:
    """Count the parameters of the MAE built on the meta device."""
    with torch.device("meta"):
        model = MaskedAutoencoder(config)
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    blocks = [sum(p.numel() for p in block.parameters()) for block in model.blocks]
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return ParamCounts(total, tuple(tuple(p.shape) for p in params), max(blocks), total - sum(blocks), weights)


def sharded_numel(shapes: tuple[tuple[int, ...], ...], shards: int) -> int:
    """Scalars one rank holds when FSDP2 splits every parameter on dim 0, padded to a multiple of `shards`."""
    return sum(ceil(s[0] / shards) * prod(s[1:]) for s in shapes)


@dataclass(frozen=True)
class ActivationEstimate:
    """Activation bytes per device: what the forward leaves for the backward, and the recompute peak."""

    saved: int  # kept from the forward to the backward (with checkpointing: each block's input only)
    recompute: int  # one block's saved tensors while it is recomputed in the backward (checkpointing), else 0

    @property
    def total(self) -> int:
        return self.saved + self.recompute


def _norm_then_linear(tokens: int, width: int, act: int) -> int:
    """LayerNorm (fp32 input, mean and rstd) feeding a linear layer (its input in the autocast dtype)."""
    return tokens * (F32 * width + 2 * F32 + act * width)


def _block(tokens: int, width: int, mlp: int, heads: int, act: int) -> int:
    """Bytes a pre-norm block saves per clip: two norm+linear inputs, fused attention, MLP hidden twice."""
    attention = tokens * (3 * width * act + width * act + heads * F32)  # q k v (one qkv buffer), out, logsumexp
    return 2 * _norm_then_linear(tokens, width, act) + attention + 2 * tokens * mlp * act  # GELU in, fc2 in


def activation_bytes(
    config: MAEConfig, batch: int, precision: str = "bf16-mixed", activation_checkpointing: bool = False
) -> ActivationEstimate:
    """Tensors autograd saves for `batch` clips, from the shapes alone.

    The residual stream and LayerNorm run in fp32, matmul inputs and the MLP hidden in the autocast dtype.
    Encoder blocks see the visible tokens, decoder blocks all of them. With checkpointing each block keeps
    only its fp32 input, and in the backward one block at a time saves its tensors again.
    """
    act = ACTIVATION_BYTES[resolve_precision(precision, bf16_gpu=True)]
    e, d = config.encoder, config.decoder
    n, k = prod(e.grid), config.visible_tokens
    tubelet = prod(e.patch_size) * e.in_chans  # pixel values per token
    pixels = n * tubelet
    outside = (
        n * I64  # the shuffled token order (the visible tokens' gather and position indices are a slice of it)
        + k * tubelet * act  # the visible tubelets, input of the embedding
        + _norm_then_linear(k, e.width, act)  # decoder input norm and embedding
        + n * (I64 + F32 * d.width)  # decoder gather: index and visible + mask tokens
        + _norm_then_linear(n, d.width, act)  # final norm and head
        + 2 * pixels * F32
        + n * F32  # loss: fp32 prediction and target (fused MSE), mask
    )
    enc_block, dec_block = _block(k, e.width, e.mlp, e.heads, act), _block(n, d.width, d.mlp, d.heads, act)
    enc_input, dec_input = k * e.width * F32, n * d.width * F32
    if not activation_checkpointing:
        return ActivationEstimate(batch * (outside + e.depth * enc_block + d.depth * dec_block), 0)
    saved = outside + e.depth * enc_input + d.depth * dec_input
    recompute = max(enc_block - enc_input if e.depth else 0, dec_block - dec_input if d.depth else 0)
    return ActivationEstimate(batch * saved, batch * recompute)


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device. `offloaded` is host memory per rank (cpu_offload) and not part of the total."""

    params: int  # fp32 master weights (sharded under FSDP)
    grads: int  # fp32 gradients, sharded alike
    optimizer: int  # AdamW exp_avg and exp_avg_sq, fp32, sharded alike
    working_params: int  # FSDP gathered units in param_dtype, or autocast's low-precision weight copies
    activations: int  # saved for the backward, plus the recompute peak under activation checkpointing
    overhead: int  # FRAMEWORK_OVERHEAD_BYTES
    fragmentation: int  # FRAGMENTATION_MARGIN of the tensor bytes above
    offloaded: int = 0

    @property
    def total(self) -> int:
        return (
            self.params
            + self.grads
            + self.optimizer
            + self.working_params
            + self.activations
            + self.overhead
            + self.fragmentation
        )

    def fits(self, gpu_mem_bytes: int | float) -> bool:
        return self.total <= gpu_mem_bytes

    def to_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "total": self.total}


def _working_params(counts: ParamCounts, setup: TrainSetup) -> int:
    """Unsharded copies on the GPU besides the master weights.

    FSDP: the root unit stays gathered through forward and backward; with reshard_after_forward two block units
    are in flight (one computing, one prefetched), without it every block stays gathered until its backward.
    Mixed precision without bf16-gathered parameters: autocast's copies of every matmul weight, held by autograd.
    """
    act = ACTIVATION_BYTES[setup.precision]
    gathered = getattr(torch, setup.fsdp.param_dtype).itemsize if setup.fsdp.param_dtype else F32
    copies = act * counts.matmul_weights if act < F32 and (not setup.sharded or gathered == F32) else 0
    if not setup.sharded:
        return copies
    blocks = 2 * counts.largest_block if setup.fsdp.reshard_after_forward else counts.total - counts.root
    return (counts.root + blocks) * gathered + copies


def _assemble(counts: ParamCounts, setup: TrainSetup, activations: ActivationEstimate) -> MemoryPlan:
    """The plan from parameter counts and activations: model state sharded (or offloaded), margins added."""
    local = sharded_numel(counts.shapes, setup.shards)
    params, grads, optimizer = F32 * local, F32 * local, 2 * F32 * local
    offloaded = params + grads + optimizer if setup.fsdp.cpu_offload else 0
    if setup.fsdp.cpu_offload:
        params = grads = optimizer = 0
    working = _working_params(counts, setup)
    tensors = params + grads + optimizer + working + activations.total
    return MemoryPlan(
        params,
        grads,
        optimizer,
        working,
        activations.total,
        FRAMEWORK_OVERHEAD_BYTES,
        int(FRAGMENTATION_MARGIN * tensors),
        offloaded,
    )


def plan_memory(config: MAEConfig, batch: int, setup: TrainSetup | None = None) -> MemoryPlan:
    """Memory per device for MAE pretraining with `batch` clips per device.

    Constants: FRAMEWORK_OVERHEAD_BYTES = 2 GiB (CUDA context, library workspaces, NCCL buffers) and a
    fragmentation margin of FRAGMENTATION_MARGIN = 10% of all tensor bytes (allocator fragmentation and the
    short-lived buffers of the backward, e.g. activation gradients and FSDP reduce-scatter inputs).
    """
    if batch < 1:
        raise ConfigError(f"the batch per device must be at least 1 clip, got {batch}")
    setup = setup or TrainSetup()
    acts = activation_bytes(config, batch, setup.precision, setup.activation_checkpointing)
    return _assemble(param_counts(config), setup, acts)


def max_batch_that_fits(
    config: MAEConfig, gpu_mem_bytes: int | float, setup: TrainSetup | None = None, limit: int = 1 << 20
) -> int:
    """Largest per-device batch whose plan fits in `gpu_mem_bytes` (0 if not even one clip fits)."""
    setup = setup or TrainSetup()
    counts = param_counts(config)

    def fits(batch: int) -> bool:
        acts = activation_bytes(config, batch, setup.precision, setup.activation_checkpointing)
        return _assemble(counts, setup, acts).fits(gpu_mem_bytes)

    low, high = 0, limit + 1  # fits(low) holds (or low is 0); fits(high) fails
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low
