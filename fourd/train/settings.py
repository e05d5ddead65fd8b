"""Check a composed train config's plain settings before anything is built, so a bad one is named by its key."""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from fourd.conf.checks import check_switches, check_whole_numbers, is_whole_number
from fourd.errors import ConfigError

WHOLE_NUMBERS = {  # key: the smallest value that means something
    "seed": 0,
    "max_bad_steps": 1,
    "throughput_window": 1,
    "checkpoint.every_n_steps": 0,
    "checkpoint.keep_last": 0,
    "images.every_n_steps": 0,
    "images.num_clips": 0,
    "data.batch_size": 1,
    "data.num_workers": 0,
    "data.prefetch_factor": 1,
    "trainer.max_steps": -1,  # -1: no limit
    "trainer.num_nodes": 1,
    "trainer.log_every_n_steps": 1,
    "trainer.accumulate_grad_batches": 1,
}

SWITCHES = ("compile", "dry_run", "export_encoder", "strategy.activation_checkpointing")


def check_devices(devices: object) -> None:
    """`auto`, -1 (every device), a count >= 1, or a list of device indices."""
    if devices in ("auto", -1, "-1"):
        return
    if is_whole_number(devices) and devices >= 1:
        return
    if (
        isinstance(devices, (list, tuple, ListConfig))
        and devices
        and all(is_whole_number(d) and d >= 0 for d in devices)
    ):
        return
    raise ConfigError(f"trainer.devices={devices!r} must be auto, -1 (all), a count >= 1 or a list of device indices")


def check_settings(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first setting of WHOLE_NUMBERS, SWITCHES or trainer.devices that cannot work."""
    check_whole_numbers(cfg, WHOLE_NUMBERS)
    if OmegaConf.select(cfg, "trainer.max_steps", default=None) == 0:
        raise ConfigError("trainer.max_steps=0 trains nothing: -1 (no limit) or a whole number >= 1")
    check_switches(cfg, SWITCHES)
    check_devices(OmegaConf.select(cfg, "trainer.devices", default="auto"))
