"""Callbacks: reconstruction pictures and the unwrapped encoder export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torchvision.utils import make_grid, save_image

from fourd.files import atomic_write
from fourd.weights import save_weights


def reconstruction_grid(
    clips: torch.Tensor, masked: torch.Tensor, pasted: torch.Tensor, max_frames: int = 8
) -> torch.Tensor:
    """One image: for each clip three rows (input, masked input, reconstruction), one column per frame."""
    step = max(1, clips.shape[2] // max_frames)
    rows = []
    for clip in range(clips.shape[0]):
        for video in (clips, masked, pasted):
            rows.append(video[clip, :, ::step].transpose(0, 1))  # (frames, C, H, W)
    frames = torch.cat(rows).float().clamp(0, 1)
    return make_grid(frames, nrow=rows[0].shape[0], padding=2, pad_value=1.0)


class ReconstructionImages(L.Callback):
    """Every N steps, writes input / masked input / reconstruction of fixed clips as a PNG (and to TensorBoard)."""

    def __init__(self, out_dir: str | Path, every_n_steps: int = 500, num_clips: int = 2) -> None:
        self.out_dir = Path(out_dir)
        self.every_n_steps = every_n_steps
        self.num_clips = num_clips
        self.clips: torch.Tensor | None = None
        self.written_step = -1

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: dict[str, torch.Tensor],
        batch_idx: int,
    ) -> None:
        if self.clips is None:  # the same clips every time, so pictures are comparable over training
            self.clips = batch["video"][: self.num_clips].detach().clone()
        self.clips = self.clips.to(batch["video"].device)
        step = trainer.global_step  # counts optimizer steps, so accumulation batches share one
        if self.every_n_steps > 0 and step % self.every_n_steps == 0:
            self.write(trainer, pl_module, step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.clips is not None:
            self.write(trainer, pl_module, trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"clips": self.clips.cpu()} if self.clips is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clips = state_dict.get("clips")  # a resumed run keeps drawing the same clips

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, step: int) -> None:
        """All ranks reconstruct (a collective under FSDP); rank 0 writes the picture."""
        if step == self.written_step:
            return
        self.written_step = step
        video = self.clips.float().div(255)
        generator = torch.Generator(device=video.device).manual_seed(0)
        rec = pl_module.model.reconstruct(video, generator)
        if trainer.is_global_zero:
            grid = reconstruction_grid(video, rec.masked, rec.pasted)
            atomic_write(self.out_dir / f"step_{step:07d}.png", lambda tmp: save_image(grid, tmp, format="png"))
            for logger in trainer.loggers:
                if hasattr(logger.experiment, "add_image"):
                    logger.experiment.add_image("reconstruction", grid, step)


def full_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded CPU state dict; a collective when parameters are FSDP2 DTensors."""
    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


class EncoderExport(L.Callback):
    """At the end of training writes the encoder alone, unwrapped, to one safetensors with its config."""

    def __init__(self, path: str | Path, skip_if: Callable[[], bool] = lambda: False) -> None:
        self.path = Path(path)
        self.skip_if = skip_if  # e.g. a preempted run: its encoder is not the finished one

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.skip_if():
            return
        state = full_state_dict(pl_module.model)
        if trainer.is_global_zero:
            encoder = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
            save_weights(
                self.path,
                encoder,
                "encoder",
                pl_module.mae_config.encoder.to_dict(),
                extra={
                    "mae_config": json.dumps(pl_module.mae_config.to_dict()),
                    "global_step": str(trainer.global_step),
                },
            )
