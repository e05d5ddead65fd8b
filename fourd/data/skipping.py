"""Reading past unusable entries: the one skip-and-retry loop of video folders and dataset readers."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


def first_usable(
    index: int,
    length: int,
    max_retries: int,
    unusable: dict[Hashable, str],
    name_of: Callable[[int], Hashable],
    load: Callable[[int], T],
    errors: tuple[type[Exception], ...],
    what: str,
) -> tuple[T, int, int]:
    """(item, position, skipped): `load(position)` at the first usable position from `index` on (wrapping round
    `length`), passing over names already in `unusable` and loads that raise one of `errors` (warned once and
    added to `unusable`); a RuntimeError after `max_retries` unusable positions in a row."""
    attempts = min(max_retries, length)
    for skipped in range(attempts):
        position = (index + skipped) % length
        name = name_of(position)
        if name in unusable:
            continue
        try:
            return load(position), position, skipped
        except errors as error:
            warnings.warn(f"{what}: skipping {name}: {error}", stacklevel=3)
            unusable[name] = str(error)
    raise RuntimeError(
        f"{attempts} consecutive unusable {what} from item {index} (last: {unusable.get(name)}): check the dataset"
    )
