"""ViT size registry: the official 4DS sizes plus 22B, under names safe on case-insensitive file systems."""

from __future__ import annotations

from dataclasses import dataclass

RELEASE_READOUT_DEPTH = 0.95  # the released 4DS readouts read the encoder's feature at 95% of its depth (paper)


@dataclass(frozen=True)
class ViTSize:
    """Transformer shape: width (hidden size), depth (blocks), mlp hidden size, attention heads."""

    width: int
    depth: int
    mlp: int
    heads: int


# fourd name -> size. Official names (kauldron VIT_SIZES) map onto these via OFFICIAL_NAMES;
# "G" becomes "bigg" so that config files vit_g.yaml and vit_bigg.yaml never collide.
VIT_SIZES: dict[str, ViTSize] = {
    "mu": ViTSize(32, 1, 128, 2),
    "ti": ViTSize(192, 12, 768, 3),
    "s": ViTSize(384, 12, 1536, 6),
    "m": ViTSize(512, 12, 2048, 8),
    "b": ViTSize(768, 12, 3072, 12),
    "l": ViTSize(1024, 24, 4096, 16),
    "h": ViTSize(1280, 32, 5120, 16),
    "g": ViTSize(1408, 40, 6144, 16),
    "bigg": ViTSize(1664, 48, 8192, 16),
    "e": ViTSize(1792, 56, 15360, 16),
    "22b": ViTSize(6144, 48, 24576, 48),
}

OFFICIAL_NAMES: dict[str, str] = {
    "mu": "mu",
    "Ti": "ti",
    "S": "s",
    "M": "m",
    "B": "b",
    "L": "l",
    "H": "h",
    "g": "g",
    "G": "bigg",
    "e": "e",
}


def resolve_size(name: str) -> ViTSize:
    """Look a size up by fourd name ('b', 'bigg', '22b') or official name ('B', 'ViT-G', 'g/16')."""
    key = name.removeprefix("ViT-").removeprefix("vit_").split("/")[0]
    if key in OFFICIAL_NAMES:  # case-sensitive first: official 'g' and 'G' differ
        return VIT_SIZES[OFFICIAL_NAMES[key]]
    if key.lower() in VIT_SIZES:
        return VIT_SIZES[key.lower()]
    raise ValueError(
        f"unknown ViT size {name!r}; known: {', '.join(VIT_SIZES)} (official: {', '.join(OFFICIAL_NAMES)})"
    )
