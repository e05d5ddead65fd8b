"""Errors for bad input from the user, as opposed to bugs."""

from __future__ import annotations


class FourdError(Exception):
    """Bad input from the user: entry points print its message as one `error:` line and exit non-zero."""


class ConfigError(FourdError, ValueError):
    """A setting that cannot work; the message names the key."""
