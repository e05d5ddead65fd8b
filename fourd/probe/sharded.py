"""A frozen fourd encoder sharded over the ranks (FSDP2, `fully_shard` per block as in training), so that ViT-e
and 22B backbones probe on devices smaller than the model, and the lockstep its forwards need: every forward
gathers each block from all ranks, so all ranks run each forward together, on a stand-in clip where a rank has
nothing of its own to compute."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from fourd.devices import cluster_environment
from fourd.errors import ConfigError
from fourd.probe.backbones.native import EncoderBackbone
from fourd.probe.features import FrozenFeatures
from fourd.probe.store import WAIT_POLL_S
from fourd.sharding import shard_blocks

log = logging.getLogger(__name__)
IDLE_POLL_S = WAIT_POLL_S / 5


def join_process_group(device: torch.device, world_size: int) -> None:
    """Join the launcher's process group now (the features are computed before Lightning would join it; Lightning
    then finds it joined and uses it)."""
    if dist.is_initialized():
        return
    environment = cluster_environment()
    if environment is None or environment.world_size() != world_size:
        launched = environment.world_size() if environment else 1
        raise ConfigError(
            f"shard_backbone=true needs devices x num_nodes = {world_size} processes started by torchrun or srun "
            f"(this is one of {launched})"
        )
    os.environ.setdefault("MASTER_ADDR", environment.main_address)
    os.environ.setdefault("MASTER_PORT", str(environment.main_port))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=environment.global_rank(), world_size=world_size)


def leave_process_group() -> None:
    """Wait for every rank, then close the process group: a gloo group still open at interpreter exit can abort a
    rank ("terminate called without an active exception") after its work is done."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard_backbone(backbone: Any, device: torch.device) -> None:
    """Shard `backbone`'s encoder over every rank of the process group, each rank's shard on `device`."""
    if not isinstance(backbone, EncoderBackbone):
        raise ConfigError(
            f"shard_backbone=true shards fourd encoders (a .safetensors file or random), not backbone={backbone.name}"
        )
    encoder = backbone.encoder
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    shard_blocks(encoder, encoder.blocks, mesh, forward_methods=("features",))
    held = sum(p.to_local().numel() for p in encoder.parameters())
    log.info(f"backbone sharded: rank {dist.get_rank()} holds {held} of {backbone.params} parameters on {device}")


class LockstepFeatures(FrozenFeatures):
    """FrozenFeatures of a sharded backbone. Before each forward the ranks agree, in one all-reduce, whether any of
    them computes and whether any has not finished its phase; a rank with nothing to compute then runs the forward
    on a stand-in clip, so every rank gathers the same blocks in the same order."""

    def __init__(self, backbone: EncoderBackbone, clip_shape: tuple[int, ...], device: torch.device) -> None:
        super().__init__(backbone, device)
        self.stand_in = {"video": torch.zeros(1, *clip_shape, device=device)}
        self.flag_device = device if dist.get_backend() == "nccl" else torch.device("cpu")

    def agree(self, computing: bool, finished: bool) -> tuple[bool, bool]:
        """(whether any rank computes now, whether every rank has finished), from every rank's own."""
        flags = torch.tensor([int(computing), int(not finished)], device=self.flag_device)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        return bool(flags[0]), not bool(flags[1])

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        self.agree(computing=True, finished=False)
        return super().__call__(batch)

    def step_aside(self, finished: bool) -> bool:
        """One round with nothing of this rank's to compute; whether every rank has finished."""
        anyone_computing, all_finished = self.agree(computing=False, finished=finished)
        if anyone_computing:
            super().__call__(self.stand_in)
        elif not all_finished:
            time.sleep(IDLE_POLL_S)
        return all_finished

    def wait(self) -> None:
        self.step_aside(finished=False)

    def done(self) -> None:
        """Keep joining the others' forwards until every rank has finished this phase."""
        while not self.step_aside(finished=True):
            pass
