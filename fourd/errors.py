"""Errors that are the user's input, not a bug, and how entry points report them: one `error:` line."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

TRACEBACK_VARIABLES = ("FOURD_TRACEBACK", "HYDRA_FULL_ERROR")
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: stopped early with its state saved; run again with resume=auto


class FourdError(Exception):
    """Bad input from the user: entry points print its message as one `error:` line and exit non-zero."""


class ConfigError(FourdError, ValueError):
    """A setting that cannot work; the message names the key."""


def error_chain(error: BaseException | None) -> Iterator[BaseException]:
    """`error`, then the errors it was raised from or while handling, innermost last."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def user_errors() -> tuple[type[BaseException], ...]:
    """What an entry point reports as one line: fourd's own errors, missing or existing files, and, where the
    program uses them, Lightning's misconfiguration, OmegaConf's key and type errors (which name the key) and
    Hydra's composition errors."""
    errors: list[type[BaseException]] = [FourdError, FileNotFoundError, FileExistsError]
    if "lightning" in sys.modules:  # never imported just to report an error
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        errors.append(MisconfigurationException)
    if "omegaconf" in sys.modules:
        from omegaconf.errors import OmegaConfBaseException

        errors.append(OmegaConfBaseException)
    if "hydra" in sys.modules:  # an override or config name that does not compose
        from hydra.errors import ConfigCompositionException

        errors.append(ConfigCompositionException)
    return tuple(errors)


def user_error(error: BaseException) -> BaseException | None:
    """The user error behind `error`: itself, or what a constructor that Hydra's `instantiate` called refused (a
    bad value or type in that config node: a ConfigError naming the node); None for a bug."""
    if "hydra" in sys.modules:
        from hydra.errors import InstantiationException

        if isinstance(error, InstantiationException) and error.__cause__ is not None:
            cause = user_error(error.__cause__)
            if cause is None and isinstance(error.__cause__, (ValueError, TypeError, OSError)):
                cause = error.__cause__
            node = re.search(r"full_key: (\S+)", str(error))
            if cause is None or node is None or isinstance(cause, FourdError):
                return cause
            return ConfigError(f"{node.group(1)}: {one_line(cause)}")
    return error if isinstance(error, user_errors()) else None


def first_few(items: Sequence[str], limit: int, sep: str = ", ") -> str:
    """At most `limit` of `items` joined by `sep`, ending in `sep` + "..." where some are left out."""
    return sep.join(items[:limit]) + (f"{sep}..." if len(items) > limit else "")


def one_line(error: BaseException) -> str:
    """The first line of an error's message (its type name if the message is empty)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def show_traceback() -> bool:
    return any(os.environ.get(name, "") not in ("", "0") for name in TRACEBACK_VARIABLES)


def print_user_error(error: BaseException) -> bool:
    """Print a user error as `error: <first line>` on stderr (True); False for a bug, or for any error under
    FOURD_TRACEBACK=1 (or HYDRA_FULL_ERROR=1): the caller lets it propagate with its traceback."""
    cause = user_error(error)
    if cause is None or show_traceback():
        return False
    print(f"error: {one_line(cause)}", file=sys.stderr)
    return True


@contextmanager
def reported() -> Iterator[None]:
    """A Hydra task body: a user error raised inside ends the program with one `error:` line and exit 1."""
    try:
        yield
    except Exception as error:
        if not print_user_error(error):
            raise
        raise SystemExit(1) from None


def cli(main: Callable[[list[str] | None], int]) -> Callable[[list[str] | None], int]:
    """An argparse entry point `main(argv) -> exit code` that returns 1 after printing a user error in one line."""

    @functools.wraps(main)
    def wrapped(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except Exception as error:
            if not print_user_error(error):
                raise
            return 1

    return wrapped
