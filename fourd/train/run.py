"""Assemble a pretraining run from a composed Hydra config: data, module, strategy, trainer, callbacks."""

from __future__ import annotations

import logging
from math import prod
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ThroughputMonitor
from omegaconf import DictConfig, ListConfig, OmegaConf

from fourd.conf import config_group, mae_config
from fourd.devices import cluster_environment
from fourd.errors import ConfigError
from fourd.models.flops import mae_flops
from fourd.models.mae import MAEConfig
from fourd.models.zoo import parameter_counts
from fourd.quiet import quiet_lightning
from fourd.train.callbacks import EncoderExport, ReconstructionImages
from fourd.train.checkpoints import (
    CHECKPOINTS,
    NO_RESUME,
    DirectCheckpointIO,
    RollingCheckpoint,
    checkpoint_damage,
    list_checkpoints,
)
from fourd.train.datamodule import data_module
from fourd.train.logs import training_loggers
from fourd.train.module import TrainModule
from fourd.train.parallelize import build_strategy, fsdp_settings
from fourd.train.precision import bf16_gpu, precision_plugin, resolve_precision
from fourd.train.preemption import Preemption
from fourd.train.rundir import ENCODER_FILE, check_run_dir, locked_run_dir, record_config
from fourd.train.settings import check_settings

log = logging.getLogger(__name__)


def world_size(trainer_cfg: DictConfig) -> int:
    devices = trainer_cfg.devices
    if devices in ("auto", -1, "-1"):
        devices = torch.cuda.device_count() if torch.cuda.is_available() and trainer_cfg.accelerator != "cpu" else 1
    count = len(devices) if isinstance(devices, (list, tuple, ListConfig)) else int(devices)
    return count * int(trainer_cfg.num_nodes)


def resolve_resume(resume: str | None, checkpoint_dir: Path) -> str | None:
    """None, 'auto' (the newest checkpoint of this run directory that reads, if any) or a checkpoint that must
    exist and read."""
    if resume in NO_RESUME:
        return None
    if resume == "auto":
        for _, path in reversed(list_checkpoints(checkpoint_dir)):
            damage = checkpoint_damage(path)
            if damage is None:
                log.info(f"resuming from {path}")
                return str(path)
            log.warning(f"resume=auto: skipping damaged {path}: {damage}")
        log.info(f"resume=auto: no readable checkpoint in {checkpoint_dir} yet, starting fresh")
        return None
    path = Path(resume)
    if not path.exists():
        raise FileNotFoundError(f"resume={resume}: no such checkpoint")
    damage = checkpoint_damage(path)
    if damage is not None:
        raise ConfigError(f"resume={resume} is not a checkpoint fourd can resume from: {damage}")
    return resume


def trainer_plugins(precision: str, accelerator: str) -> list[Any]:
    """Checkpoint files written in place (see DirectCheckpointIO), the precision plugin (which clips gradients
    with fused AdamW too) and the cluster environment."""
    device_type = "cuda" if accelerator != "cpu" and torch.cuda.is_available() else "cpu"
    cluster = cluster_environment()
    return [DirectCheckpointIO(), precision_plugin(precision, device_type), *([cluster] if cluster else [])]


def trainer_arguments(cfg: DictConfig, run_dir: Path, tokens_per_clip: int) -> dict[str, Any]:
    """Every lightning.Trainer argument of this run: the config's, with fourd's strategy, plugins, callbacks and
    loggers (what a GPU node builds, so tests can check it without one)."""
    trainer_kwargs: dict[str, Any] = OmegaConf.to_container(cfg.trainer, resolve=True)
    precision = resolve_precision(trainer_kwargs.pop("precision"), bf16_gpu(trainer_kwargs["accelerator"]))
    strategy_cfg = cfg.strategy
    ddp_kwargs = {
        k: strategy_cfg[k] for k in ("find_unused_parameters", "gradient_as_bucket_view") if k in strategy_cfg
    }
    callbacks = [
        LearningRateMonitor(logging_interval="step"),
        ThroughputMonitor(
            batch_size_fn=lambda batch: batch["video"].shape[0],
            length_fn=lambda batch: batch["video"].shape[0] * tokens_per_clip,
            window_size=cfg.throughput_window,
        ),
        ReconstructionImages(run_dir / "reconstructions", cfg.images.every_n_steps, cfg.images.num_clips),
    ]
    checkpoint = None
    if trainer_kwargs["enable_checkpointing"] is not False:
        checkpoint = RollingCheckpoint(run_dir / CHECKPOINTS, cfg.checkpoint.every_n_steps, cfg.checkpoint.keep_last)
        callbacks.append(checkpoint)
    trainer_kwargs["enable_checkpointing"] = False  # fourd's RollingCheckpoint replaces Lightning's ModelCheckpoint
    preemption = Preemption(checkpoint)
    callbacks.append(preemption)
    if cfg.export_encoder:
        callbacks.append(EncoderExport(run_dir / ENCODER_FILE, skip_if=lambda: preemption.preempted))
    loggers = training_loggers(run_dir, flush_every_n_steps=trainer_kwargs["log_every_n_steps"])
    cpu_offload = bool(strategy_cfg.get("cpu_offload", False))
    return {
        **trainer_kwargs,
        "strategy": build_strategy(strategy_cfg.name, world_size(cfg.trainer), ddp_kwargs, cpu_offload),
        "callbacks": callbacks,
        "logger": loggers,
        "default_root_dir": run_dir,
        "plugins": trainer_plugins(precision, trainer_kwargs["accelerator"]),
    }


def build_trainer(cfg: DictConfig, run_dir: Path, tokens_per_clip: int) -> L.Trainer:
    arguments = trainer_arguments(cfg, run_dir, tokens_per_clip)
    with config_group("trainer"):
        return L.Trainer(**arguments)


def describe(config: MAEConfig) -> str:
    params = parameter_counts(config)
    return (
        f"encoder {params['encoder']:,} params, decoder {params['decoder']:,} params, "
        f"{mae_flops(config)['total'] / 1e9:.1f} forward GFLOPs per clip at mask ratio {config.mask_ratio}"
    )


def warn_if_never_resumes(resume: str | None, hydra_cfg: DictConfig | None) -> None:
    """resume=auto in a run directory named by the start time: a restart gets a new one and finds nothing.

    Under multirun the directory is hydra.sweep.dir (plus the job's subdir), not hydra.run.dir.
    """
    if resume != "auto" or hydra_cfg is None:
        return
    key = "sweep" if str(hydra_cfg.get("mode")) == "RunMode.MULTIRUN" else "run"
    pattern = str(OmegaConf.to_container(hydra_cfg[key], resolve=False)["dir"])
    if "${now:" in pattern:
        log.warning(
            f"resume=auto, but the run directory is named by the start time (hydra.{key}.dir={pattern}): a "
            f"restarted run gets a new directory and can never resume. Set hydra.{key}.dir to a fixed path."
        )


def train(cfg: DictConfig, run_dir: Path, hydra_cfg: DictConfig | None = None) -> L.Trainer | None:
    """Run (or, with dry_run, only build and describe) the pretraining described by `cfg`, alone in `run_dir`;
    the config (with Hydra's settings, `hydra_cfg`) is recorded once everything is built, so a refused run
    changes nothing in the folder."""
    quiet_lightning()
    check_settings(cfg)
    with locked_run_dir(run_dir):
        warn_if_never_resumes(cfg.resume, hydra_cfg)
        check_run_dir(run_dir, cfg)
        ckpt_path = resolve_resume(cfg.resume, run_dir / CHECKPOINTS)
        module, datamodule, trainer = build(cfg, run_dir)
        record_config(run_dir, cfg, hydra_cfg)
        if cfg.dry_run:
            log.info(f"dry run: config composed, data ({len(datamodule.dataset)} clips), module and trainer built")
            return None
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        return trainer


def build(cfg: DictConfig, run_dir: Path) -> tuple[TrainModule, L.LightningDataModule, L.Trainer]:
    """The module, data and trainer of `cfg`, seeded."""
    config = mae_config(cfg.model)
    log.info(f"model: {describe(config)}")
    L.seed_everything(cfg.seed, workers=True)
    data_kwargs = {k: v for k, v in cfg.data.items() if k != "dataset"}
    datamodule = data_module(instantiate(cfg.data.dataset), **data_kwargs, seed=cfg.seed)
    module = TrainModule(
        model=config.to_dict(),
        optim=OmegaConf.to_container(cfg.optimizer, resolve=True),
        fsdp=fsdp_settings(cfg.strategy),
        activation_checkpointing=cfg.strategy.activation_checkpointing,
        compile=cfg.compile,
        seed=cfg.seed,
        max_bad_steps=cfg.max_bad_steps,
    )
    return module, datamodule, build_trainer(cfg, run_dir, prod(config.encoder.grid))
