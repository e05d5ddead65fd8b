"""fourd: Scaling 4D Representations (4DS) in PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fourd.weights import load

__version__ = "0.1.0"
__all__ = ["load"]


def __getattr__(name: str) -> Any:
    """`fourd.load` on first use: `import fourd` (and so every CLI's `--help`) does not import torch."""
    if name == "load":
        from fourd.weights import load

        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
