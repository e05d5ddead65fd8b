"""Pictures: colour-mapped depth, tracks and boxes drawn on frames, image grids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from fourd.files import atomic_write

LABEL_PAD = 4  # pixels around a row label

PALETTE = [tuple(int(255 * c) for c in matplotlib.colormaps["tab10"](i)[:3]) for i in range(10)]


def colorize(depth: np.ndarray, cmap: str = "turbo", limits: tuple[float, float] | None = None) -> np.ndarray:
    """Depth (..., H, W) -> uint8 RGB (..., H, W, 3), near = warm; by default the 2-98th percentiles span the map."""
    low, high = limits if limits is not None else np.percentile(depth, [2, 98])
    scaled = (depth - low) / max(high - low, 1e-8)
    return (matplotlib.colormaps[cmap](1 - np.clip(scaled, 0, 1))[..., :3] * 255).astype(np.uint8)


def draw_tracks(
    frame: np.ndarray, points: np.ndarray, visible: np.ndarray, scale: int = 4, hollow: bool = False
) -> Image.Image:
    """Frame (H, W, 3) upscaled by `scale` with points (N, 2) pixel (x, y) as dots (hollow for predictions)."""
    image = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    for i, ((x, y), shown) in enumerate(zip(points * scale, visible, strict=True)):
        if shown:
            box = (x - 3, y - 3, x + 3, y + 3)
            draw.ellipse(box, outline=PALETTE[i % 10], fill=None if hollow else PALETTE[i % 10], width=2)
    return image


def draw_boxes(
    image: Image.Image, boxes: np.ndarray, visible: np.ndarray, scale: int = 4, dashed: bool = False
) -> Image.Image:
    """Boxes (N, 4) x0, y0, x1, y1 in frame pixels drawn on an image upscaled by `scale`."""
    draw = ImageDraw.Draw(image)
    for i, (box, shown) in enumerate(zip(boxes * scale, visible, strict=True)):
        if shown:
            draw.rectangle(tuple(box), outline=PALETTE[i % 10], width=1 if dashed else 2)
    return image


def save_grid(
    rows: Sequence[Sequence[np.ndarray | Image.Image]],
    path: str | Path,
    labels: Sequence[str] | None = None,
    pad: int = 2,
) -> Path:
    """Tile equally sized images (rows of columns) with white padding into one PNG, written atomically; with
    `labels`, each row's label is written in a margin on its left."""
    tiles = [[np.asarray(t.convert("RGB") if isinstance(t, Image.Image) else t) for t in row] for row in rows]
    h, w = tiles[0][0].shape[:2]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max((int(measure.textlength(label)) + 2 * LABEL_PAD for label in labels), default=0) if labels else 0
    canvas = np.full((len(tiles) * (h + pad) + pad, margin + max(map(len, tiles)) * (w + pad) + pad, 3), 255, np.uint8)
    for r, row in enumerate(tiles):
        top = pad + r * (h + pad)
        for c, tile in enumerate(row):
            left = margin + pad + c * (w + pad)
            canvas[top : top + h, left : left + w] = tile
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for r, label in enumerate(labels or ()):
        draw.text((LABEL_PAD, pad + r * (h + pad) + h // 2), label, fill=(0, 0, 0), anchor="lm")
    return atomic_write(path, lambda tmp: image.save(tmp, format="png"))
