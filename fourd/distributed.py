"""Small collectives that are no-ops in a single process, for training and probes."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world_size() -> tuple[int, int]:
    """This process's rank and the number of ranks in its process group; (0, 1) in a single process."""
    return (dist.get_rank(), dist.get_world_size()) if is_distributed() else (0, 1)


def any_rank(flag: bool | torch.Tensor, device: torch.device) -> bool:
    """True on every rank if `flag` is True on any rank. A device tensor flag costs one sync, after the reduce."""
    if not is_distributed():
        return bool(flag)
    value = torch.as_tensor(flag, device=device).to(torch.int64).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_objects(obj: Any) -> list[Any]:
    """`obj` of every rank, in rank order, on every rank."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
