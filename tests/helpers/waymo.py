"""A small Waymo Open Dataset v2 layout written from the format's specification: ``<root>/<split>/<component>/
<segment_context_name>.parquet`` for the camera_image and camera_box components, rows in shuffled order."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

FRONT, FRONT_LEFT = 1, 2  # key.camera_name
HEIGHT, WIDTH = 64, 96
FIRST_MICROS, FRAME_MICROS = 1_557_000_000_000_000, 100_000  # 10 Hz
Box = tuple[float, float, float, float]  # centre x, centre y, width, height in pixels


def timestamp(frame: int) -> int:
    return FIRST_MICROS + FRAME_MICROS * frame


def jpeg(shade: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), shade, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_segment(
    root: Path,
    split: str,
    segment: str,
    boxes: dict[int, dict[str, dict[int, Box]]],
    num_frames: int = 16,
    image_cameras: tuple[int, ...] = (FRONT, FRONT_LEFT),
    corrupt_frame: int | None = None,
) -> None:
    """A segment's images for ``image_cameras`` (grey JPEGs 64x96, or truncated bytes at ``corrupt_frame`` of
    FRONT) and its boxes: camera -> object id -> frame -> box."""
    rng = np.random.default_rng(len(segment))
    images = [(camera, frame) for camera in image_cameras for frame in range(num_frames)]
    image_bytes = [jpeg(8 * frame) for _, frame in images]
    if corrupt_frame is not None:
        position = images.index((FRONT, corrupt_frame))
        image_bytes[position] = image_bytes[position][:100]
    order = rng.permutation(len(images))
    write_component(
        root / split / "camera_image" / f"{segment}.parquet",
        segment,
        [timestamp(images[i][1]) for i in order],
        [images[i][0] for i in order],
        {"[CameraImageComponent].image": pa.array([image_bytes[i] for i in order], pa.binary())},
    )
    rows = [(camera, obj, frame, box) for camera, objects in boxes.items() for obj, track in objects.items()
            for frame, box in track.items()]  # fmt: skip
    rows = [rows[i] for i in rng.permutation(len(rows))]
    fields = {"center.x": 0, "center.y": 1, "size.x": 2, "size.y": 3}
    columns = {
        "key.camera_object_id": pa.array([obj for _, obj, _, _ in rows], pa.string()),
        **{
            f"[CameraBoxComponent].box.{name}": pa.array([box[i] for *_, box in rows], pa.float64())
            for name, i in fields.items()
        },
        "[CameraBoxComponent].type": pa.array([1] * len(rows), pa.int8()),
    }
    write_component(
        root / split / "camera_box" / f"{segment}.parquet",
        segment,
        [timestamp(frame) for _, _, frame, _ in rows],
        [camera for camera, *_ in rows],
        columns,
    )


def write_component(path: Path, segment: str, timestamps: list[int], cameras: list[int], columns: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = {
        "key.segment_context_name": pa.array([segment] * len(timestamps), pa.string()),
        "key.frame_timestamp_micros": pa.array(timestamps, pa.int64()),
        "key.camera_name": pa.array(cameras, pa.int8()),
    }
    pq.write_table(pa.table({**keys, **columns}), path)


def moving(start: Box, velocity: tuple[float, float], frames: range) -> dict[int, Box]:
    """A box of fixed size whose centre moves ``velocity`` pixels per frame."""
    cx, cy, w, h = start
    return {frame: (cx + velocity[0] * frame, cy + velocity[1] * frame, w, h) for frame in frames}
