"""Waymo Open Dataset v2 camera boxes as box-tracking clips (the paper's box-tracking data).

Layout: ``<root>/<split>/<component>/<segment_context_name>.parquet``, splits ``training``, ``validation``,
``testing``. Two components are read, joined on ``key.segment_context_name``, ``key.frame_timestamp_micros`` and
``key.camera_name`` (int8, 1 = FRONT); rows come in no particular order:

- ``camera_image``: ``[CameraImageComponent].image``, the JPEG bytes of a frame;
- ``camera_box``: one row per object and frame, ``key.camera_object_id`` and ``[CameraBoxComponent].box.center.x``,
  ``.center.y``, ``.size.x``, ``.size.y`` in pixels.

The paper's own preprocessing was never released; this follows the reconstruction of a later paper from the 4DS
text (each number a setting): the FRONT camera's frames (10 Hz) ``stride`` 2 apart (5 fps) in non-overlapping
clips of ``num_frames`` 16, each frame resized on its short side to ``size`` and centre cropped; a box counts in a
frame where the object is annotated and its cropped box covers at least ``min_area`` (0.5%) of the clip's frame;
the objects kept are those counted in the clip's first frame and in at least ``min_visible`` (70%) of its frames.

Clips are named ``<segment>/<first timestamp>``. Items: "video" uint8 (3, T, size, size), "boxes" float32 (O, T, 4)
x0, y0, x1, y1 in pixels of the crop, "box_visible" bool (O, T); ``num_objects`` fixes O (a random subset fixed
per clip, or padding never visible), so that items batch. Segments with a component missing or unreadable, or
without images of the camera, are skipped at construction; clips with a missing or corrupt frame, or no object
kept, when read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from fourd.data.readers.base import EntryError, SkippingDataset, clip_windows, fixed_count, read_rgb, stack_frames
from fourd.data.transforms import ClipTransform, Crop

FRONT = 1
COMPONENTS = ("camera_image", "camera_box")
SEGMENT, TIMESTAMP, CAMERA, OBJECT = (
    f"key.{name}" for name in ("segment_context_name", "frame_timestamp_micros", "camera_name", "camera_object_id")
)
IMAGE = "[CameraImageComponent].image"
BOX = tuple(f"[CameraBoxComponent].box.{part}" for part in ("center.x", "center.y", "size.x", "size.y"))


class WaymoBoxDataset(SkippingDataset):
    """Box-tracking clips of one camera of the Waymo Open v2 segments of ``split`` (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "validation",
        num_frames: int = 16,
        stride: int = 2,
        size: int = 64,
        num_objects: int = 8,
        min_visible: float = 0.7,
        min_area: float = 0.005,
        camera: int = FRONT,
        max_retries: int = 16,
    ) -> None:
        if num_objects < 1 or not 0 <= min_visible <= 1 or not 0 <= min_area < 1:
            raise ValueError(
                f"need num_objects >= 1 and fractions in [0, 1], got {num_objects=}, {min_visible=}, {min_area=}"
            )
        self.folder = Path(root) / split
        segments = sorted(
            {path.stem for component in COMPONENTS for path in (self.folder / component).glob("*.parquet")}
        )
        if not segments:
            raise FileNotFoundError(f"no Waymo Open {' or '.join(COMPONENTS)} parquet files in {self.folder}")
        self.size, self.num_objects, self.min_visible, self.min_area = size, num_objects, min_visible, min_area
        self.camera = camera
        self.transform = ClipTransform(size, train=False)
        self.clips: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []  # segment, timestamps, boxes, annotated
        names, skipped = [], {}
        for segment in segments:
            try:
                timestamps = self._timestamps(segment)
                objects = self._boxes(segment)
            except EntryError as error:
                skipped[segment] = str(error)
                continue
            windows = clip_windows(len(timestamps), num_frames, stride)
            if not windows:
                skipped[segment] = f"{len(timestamps)} frames: too few for one clip"
            for window in windows:
                boxes, annotated = boxes_at(objects, timestamps[window])
                self.clips.append((segment, timestamps[window], boxes, annotated))
                names.append(f"{segment}/{timestamps[window][0]}")
        super().__init__(names, skipped, max_retries)

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        segment, timestamps, boxes, annotated = self.clips[entry]
        frames = torch.from_numpy(stack_frames([read_rgb(image) for image in self._images(segment, timestamps)]))
        crop = self.transform.draw(*frames.shape[1:3])
        boxes = crop_boxes(boxes, crop, self.size)
        visible = annotated & (box_areas(boxes) >= self.min_area * self.size**2)
        keep = visible[:, 0] & (visible.mean(axis=1) >= self.min_visible)
        if not keep.any():
            raise EntryError(f"no object in the first frame and in {self.min_visible:.0%} of the frames")
        boxes, visible = fixed_count(
            [boxes[keep], visible[keep]], [0, False], self.num_objects, np.random.default_rng(entry)
        )
        return {
            "video": self.transform.apply(frames.permute(0, 3, 1, 2), crop).permute(1, 0, 2, 3).contiguous(),
            "boxes": torch.from_numpy(boxes).float(),
            "box_visible": torch.from_numpy(visible),
        }

    def _timestamps(self, segment: str) -> np.ndarray:
        """The camera's frame timestamps, ascending; EntryError where there are none."""
        table = read_component(self.folder, "camera_image", segment, [TIMESTAMP], self.camera)
        timestamps = np.unique(table.column(TIMESTAMP).to_numpy())
        if len(timestamps) == 0:
            raise EntryError(f"no images of camera {self.camera}")
        return timestamps

    def _boxes(self, segment: str) -> dict[int | str, dict[int, np.ndarray]]:
        """Object id -> timestamp -> box (x0, y0, x1, y1) in frame pixels, for the camera."""
        table = read_component(self.folder, "camera_box", segment, [TIMESTAMP, OBJECT, *BOX], self.camera)
        cx, cy, w, h = (table.column(name).to_numpy().astype(np.float64) for name in BOX)
        corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)
        objects: dict[int | str, dict[int, np.ndarray]] = {}
        for obj, stamp, box in zip(
            table.column(OBJECT).to_pylist(), table.column(TIMESTAMP).to_pylist(), corners, strict=True
        ):
            objects.setdefault(obj, {})[stamp] = box
        return objects

    def _images(self, segment: str, timestamps: np.ndarray) -> list[bytes]:
        """The JPEG bytes of the camera's frames at ``timestamps``, in their order; EntryError where one is missing."""
        table = read_component(self.folder, "camera_image", segment, [TIMESTAMP, IMAGE], self.camera, timestamps)
        images = dict(zip(table.column(TIMESTAMP).to_pylist(), table.column(IMAGE).to_pylist(), strict=True))
        missing = [stamp for stamp in timestamps.tolist() if stamp not in images]
        if missing:
            raise EntryError(f"no image at timestamps {missing}")
        return [images[stamp] for stamp in timestamps.tolist()]


def read_component(
    folder: Path,
    component: str,
    segment: str,
    columns: Sequence[str],
    camera: int,
    timestamps: np.ndarray | None = None,
) -> pa.Table:
    """The rows of ``camera`` (and ``timestamps``) in a segment's component, those columns; EntryError."""
    path = folder / component / f"{segment}.parquet"
    if not path.is_file():
        raise EntryError(f"no {component} component ({component}/{path.name})")
    filters = [(SEGMENT, "=", segment), (CAMERA, "=", camera)]
    if timestamps is not None:
        filters.append((TIMESTAMP, "in", set(timestamps.tolist())))
    try:
        return pq.read_table(path, columns=list(columns), filters=filters)
    except (OSError, ValueError, KeyError, pa.ArrowException) as error:
        raise EntryError(f"cannot read {component}/{path.name}: {type(error).__name__}: {error}") from error


def boxes_at(objects: dict[int | str, dict[int, np.ndarray]], timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (O, T, 4) (zeros where not annotated) and annotated (O, T) of the objects annotated at ``timestamps``."""
    stamps = timestamps.tolist()
    present = [track for track in objects.values() if any(stamp in track for stamp in stamps)]
    boxes = np.zeros((len(present), len(stamps), 4))
    annotated = np.zeros((len(present), len(stamps)), bool)
    for o, track in enumerate(present):
        for t, stamp in enumerate(stamps):
            if stamp in track:
                boxes[o, t], annotated[o, t] = track[stamp], True
    return boxes, annotated


def crop_boxes(boxes: np.ndarray, crop: Crop, size: int) -> np.ndarray:
    """(..., 4) x0, y0, x1, y1 frame pixels -> pixels of ``crop`` resized to ``size`` x ``size``, clipped to it."""
    offset = np.array([crop.left, crop.top, crop.left, crop.top], np.float64)
    scale = np.array([size / crop.width, size / crop.height] * 2)
    return np.clip((boxes - offset) * scale, 0, size)


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """Areas of (..., 4) x0, y0, x1, y1 boxes (0 where empty)."""
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)
