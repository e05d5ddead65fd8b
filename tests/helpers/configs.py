"""Composed configs shared by the whole test session: each (config, overrides) is composed once."""

from __future__ import annotations

import copy
from functools import cache

from omegaconf import DictConfig

from fourd.conf import compose


@cache
def _composed(config_name: str, overrides: tuple[str, ...]) -> DictConfig:
    return compose(config_name, overrides)


def composed(config_name: str, *overrides: str) -> DictConfig:
    """`compose(config_name, overrides)` from the session's cache, as a copy the caller may change."""
    return copy.deepcopy(_composed(config_name, overrides))
