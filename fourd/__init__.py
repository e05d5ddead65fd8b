"""fourd: Scaling 4D Representations (4DS) in PyTorch."""

from fourd.weights import load

__version__ = "0.1.0"
__all__ = ["load"]
