"""fourd: Scaling 4D Representations (4DS) in PyTorch."""

__version__ = "0.1.0"
