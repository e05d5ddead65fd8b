"""Checks of a composed config's plain settings, run before anything is built, so a bad one is named by its key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from omegaconf import DictConfig, OmegaConf

from fourd.arguments import within
from fourd.errors import ConfigError


def is_whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_whole_numbers(cfg: DictConfig, smallest: Mapping[str, int]) -> None:
    """Each key present must hold a whole number >= its smallest meaningful value."""
    for key, least in smallest.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and not (is_whole_number(value) and value >= least):
            raise ConfigError(f"{key}={value!r} must be a whole number >= {least}")


def check_switches(cfg: DictConfig, keys: Iterable[str]) -> None:
    """Each key present must hold true or false."""
    for key in keys:
        value = OmegaConf.select(cfg, key, default=False)
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be true or false")


def check_intervals(cfg: DictConfig, bounds: Mapping[str, tuple[float, float, str]]) -> None:
    """Each key present must hold a finite number inside its (low, high, "[)"-style) interval."""
    for key, (low, high, ends) in bounds.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and within(value, low, high, ends)):
            raise ConfigError(f"{key}={value!r} must be a number in {ends[0]}{low}, {high}{ends[1]}")
