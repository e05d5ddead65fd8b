"""Lightning module for MAE pretraining: optimisation, masks that resume exactly, logging, counters."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import torch
from lightning.pytorch.strategies import ModelParallelStrategy

from fourd.data.sampler import item_seed
from fourd.distributed import any_rank, gather_objects
from fourd.errors import first_few
from fourd.models.flops import mae_flops
from fourd.models.mae import MAEConfig, MaskedAutoencoder
from fourd.schedule import warmup_cosine_per_step
from fourd.train.nonfinite import BadStepCounter
from fourd.train.optim import OptimConfig, build_adamw, scaled_lr
from fourd.train.parallelize import FSDPConfig, build_mae, fsdp_mesh, sharding_summary
from fourd.train.rng import gather_rng_states, set_rng_states

log = logging.getLogger(__name__)

MAX_VIDEOS_SHOWN = 3


class TrainModule(L.LightningModule):
    """Masked-autoencoder pretraining of the 4DS encoder; the model is built in `configure_model` (`build_mae`)."""

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        fsdp: dict[str, Any] | None = None,
        activation_checkpointing: bool = False,
        compile: bool = False,
        seed: int = 0,
        max_bad_steps: int = 10,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.mae_config = MAEConfig.from_dict(model)
        self.optim_config = OptimConfig(**optim)
        self.fsdp_config = FSDPConfig(**(fsdp or {}))
        self.model: MaskedAutoencoder | None = None
        self.skipped_videos = 0  # unreadable videos passed over by this rank's items, counted every time
        self.unreadable_videos: set[str] = set()  # which ones, on any rank up to the last checkpoint
        self.bad_steps = BadStepCounter(max_bad_steps)
        self._rng_states_to_restore: dict[str, Any] | None = None

    def configure_model(self) -> None:
        if self.model is not None:
            return
        mesh = None
        if isinstance(self.trainer.strategy, ModelParallelStrategy):
            mesh = fsdp_mesh(self.fsdp_config, self.device_mesh["data_parallel"], self.trainer.num_devices)
        self.model = build_mae(
            self.mae_config,
            self.device,
            mesh,
            self.fsdp_config,
            self.hparams.activation_checkpointing,
            self.hparams.compile,
        )
        if mesh is not None:
            local, total = sharding_summary(self.model)
            log.info(
                f"FSDP2 rank {self.global_rank}: mesh {tuple(mesh.shape)} ({self.fsdp_config.sharding}), "
                f"this rank holds {local:,} of {total:,} parameter scalars"
            )
        clips = self.trainer.datamodule.batch_size if self.trainer.datamodule else 1
        self.flops_per_batch = 3 * mae_flops(self.mae_config)["total"] * clips  # forward + backward

    def masking_generator(self, batch: dict[str, Any]) -> torch.Generator:
        """Masks depend only on (seed, epoch, stream position, rank), so a resumed run draws the same masks."""
        seed = item_seed(self.hparams.seed, batch["epoch"], batch["position"], self.global_rank)
        return torch.Generator(device=self.device).manual_seed(seed)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """`batch` as VideoDataModule hands it over: uint8 "video", and "epoch", "position", "skipped" as ints."""
        video = batch["video"].float().div_(255)  # uint8 over the wire, float on device
        loss = self.model(video, generator=self.masking_generator(batch)).loss
        self.skipped_videos += batch["skipped"]
        self.unreadable_videos.update(batch["unreadable"])
        self.log("data/skipped_videos", float(self.skipped_videos), reduce_fx="sum", sync_dist=True)
        finite = not any_rank(~torch.isfinite(loss), loss.device)
        self.bad_steps.update(finite, self.global_step, loss)
        self.log("train/skipped_steps", float(self.bad_steps.total))
        self.log("train/loss", loss, prog_bar=True)
        return loss if finite else None  # None: no backward, no update; every rank skips this step together

    def on_train_end(self) -> None:
        passes, unreadable = sum(gather_objects(self.skipped_videos)), self.all_unreadable_videos()
        if unreadable and self.global_rank == 0:
            log.warning(skip_summary(unreadable, passes))
        if self.bad_steps.total:
            log.warning(f"skipped {self.bad_steps.total} steps with a non-finite loss")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["schedule_steps"] = self.schedule_steps()
        checkpoint["rng_states"] = gather_rng_states()
        checkpoint["fourd_counters"] = {
            "skipped_videos": gather_objects(self.skipped_videos),
            "unreadable_videos": self.all_unreadable_videos(),
            "bad_steps": (self.bad_steps.total, self.bad_steps.in_a_row),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved, now = checkpoint.get("schedule_steps"), self.schedule_steps()
        if saved is not None and saved != now:
            log.warning(
                f"the checkpoint's run was scheduled for {saved} steps, this one for {now} (trainer.max_steps "
                f"changed): the learning-rate schedule is rebuilt for {now} steps, so the lr changes at the resume"
            )
        counters = checkpoint.get("fourd_counters", {})
        self.bad_steps.total, self.bad_steps.in_a_row = counters.get("bad_steps", (0, 0))
        self.unreadable_videos = set(counters.get("unreadable_videos", ()))
        states, skipped = checkpoint.get("rng_states"), counters.get("skipped_videos")
        if states is None or len(states) != self.trainer.world_size:
            log.warning("checkpoint has no random generator states for this number of ranks: not restoring them")
            return
        self._rng_states_to_restore = states[self.global_rank]
        self.skipped_videos = skipped[self.global_rank] if skipped else 0

    def all_unreadable_videos(self) -> list[str]:
        """The unreadable videos passed over on any rank, sorted (a collective: every rank must call it)."""
        return sorted(set().union(*gather_objects(self.unreadable_videos)))

    def on_train_start(self) -> None:
        if self._rng_states_to_restore is not None:  # as late as possible: the loop starts drawing right after
            set_rng_states(self._rng_states_to_restore)
            self._rng_states_to_restore = None

    def global_batch_size(self) -> int:
        return self.trainer.datamodule.batch_size * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def schedule_steps(self) -> int:
        """The optimizer steps the learning-rate schedule spans."""
        return int(self.trainer.estimated_stepping_batches)

    def configure_optimizers(self) -> dict[str, Any]:
        c = self.optim_config
        lr = scaled_lr(c.base_lr, self.global_batch_size())
        optimizer = build_adamw(self.model, c, lr, self.model.no_weight_decay())
        total = self.schedule_steps()
        log.info(f"lr {lr:.3g} (base {c.base_lr:g} x global batch {self.global_batch_size()} / 256), {total} steps")
        return {
            "optimizer": optimizer,
            "lr_scheduler": warmup_cosine_per_step(optimizer, c.warmup_steps, total, c.min_lr_ratio),
        }


def skip_summary(unreadable: list[str], passes: int) -> str:
    """One line: how many distinct videos were skipped, how often, and the first few of them."""
    shown = first_few(unreadable, MAX_VIDEOS_SHOWN)
    return f"skipped {len(unreadable)} unreadable videos (passed over {passes} times): {shown}"
