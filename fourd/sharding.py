"""FSDP2 the torchtitan way, for a model in training and a frozen probe backbone alike: `fully_shard` on each
transformer block, then on the root (embeddings, heads), so a block's parameters are gathered only while it runs."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn
from torch.distributed.device_mesh import DeviceMesh

try:  # public since torch 2.6
    from torch.distributed.fsdp import (
        CPUOffloadPolicy,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
        register_fsdp_forward_method,
    )
except ImportError:  # torch 2.4 / 2.5
    from torch.distributed._composable.fsdp import (
        CPUOffloadPolicy,
        MixedPrecisionPolicy,
        OffloadPolicy,
        fully_shard,
        register_fsdp_forward_method,
    )

__all__ = ["CPUOffloadPolicy", "MixedPrecisionPolicy", "OffloadPolicy", "shard_blocks"]


def shard_blocks(
    model: nn.Module,
    blocks: Iterable[nn.Module],
    mesh: DeviceMesh,
    block_policy: MixedPrecisionPolicy | None = None,
    root_policy: MixedPrecisionPolicy | None = None,
    offload: OffloadPolicy | None = None,
    reshard_after_forward: bool = True,
    forward_methods: tuple[str, ...] = (),
) -> None:
    """`fully_shard` each of `blocks`, then `model` (whose own parameters stay gathered after its forward).

    `forward_methods` are root methods other than `forward` that run the model (they gather it too).
    """
    block_policy = block_policy or MixedPrecisionPolicy()
    root_policy = root_policy or MixedPrecisionPolicy()
    offload = offload or OffloadPolicy()
    for block in blocks:
        fully_shard(
            block,
            mesh=mesh,
            mp_policy=block_policy,
            offload_policy=offload,
            reshard_after_forward=reshard_after_forward,
        )
    fully_shard(model, mesh=mesh, mp_policy=root_policy, offload_policy=offload, reshard_after_forward=False)
    for name in forward_methods:
        register_fsdp_forward_method(model, name)
