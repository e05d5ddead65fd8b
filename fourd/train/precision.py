"""Lightning precision names, with 'auto' resolved for the device that runs the step."""

from __future__ import annotations

from fourd.errors import ConfigError

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
ALIASES = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}


def resolve_precision(precision: str | int, bf16_gpu: bool) -> str:
    """A Lightning precision name: aliases spelled out; 'auto' is bf16-mixed on a GPU with bf16, else 32-true."""
    if str(precision) == "auto":
        return "bf16-mixed" if bf16_gpu else "32-true"
    name = ALIASES.get(str(precision), str(precision))
    if name not in PRECISIONS:
        raise ConfigError(f"unsupported precision {precision!r}; choose one of {', '.join(PRECISIONS)} or auto")
    return name
