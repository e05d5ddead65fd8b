"""Action classification clips: Kinetics and Something-Something-v2 lists, and one dataset reading both.

Kinetics: a CSV with columns ``label,youtube_id,time_start,time_end,split``; the video of a row is
``<youtube_id>_<time_start:06d>_<time_end:06d>.mp4`` anywhere under the videos folder (flat, or in one
folder per label). Something-Something-v2: a labels JSON ``{"Approaching something with your camera": "0",
...}`` and a split JSON list of ``{"id": "78687", "template": "Holding [something] ...", ...}`` whose
template without brackets is the label; the video is ``<id>.webm`` anywhere under the videos folder.

Every split of a dataset shares one class list (the train CSV's labels, a labels file, or SSv2's labels JSON):
a label outside it is an error naming the label, never a silent shift of the class indices. Rows whose video
is missing or that have no label (as in test splits) are skipped.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from fourd.data.clips import sample_clip_indices
from fourd.data.readers.base import SkippingDataset
from fourd.data.transforms import ClipTransform
from fourd.data.video import read_clip
from fourd.errors import FourdError

KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


@dataclass
class ActionList:
    """Labelled videos: ``names[i]`` is at ``paths[i]`` with class ``labels[i]``, an index into ``classes``."""

    classes: list[str]
    names: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it is not listed

    def __post_init__(self) -> None:
        self._class_index = {name: index for index, name in enumerate(self.classes)}

    def add(self, name: str, path: Path | None, label: str | None) -> None:
        """List a video, or record why it cannot be; a label outside the class list is a FourdError."""
        if label is None:
            self.skipped[name] = "no label"
        elif label not in self._class_index:
            raise FourdError(f"{name}: label {label!r} is not one of the {len(self.classes)} classes")
        elif path is None:
            self.skipped[name] = "video file not found"
        else:
            self.names.append(name)
            self.paths.append(path)
            self.labels.append(self._class_index[label])


def kinetics_list(csv_path: str | Path, videos_root: str | Path, classes: Sequence[str] | None = None) -> ActionList:
    """Videos of a Kinetics CSV; ``classes`` default to the CSV's own (pass the train split's: :func:`class_list`)."""
    rows = _kinetics_rows(csv_path)
    actions = ActionList(list(classes) if classes is not None else _labels(rows))
    videos = index_files(videos_root, ".mp4")
    for number, row in enumerate(rows, start=2):
        try:
            name = f"{row['youtube_id']}_{int(float(row['time_start'])):06d}_{int(float(row['time_end'])):06d}"
        except (TypeError, ValueError):
            actions.skipped[f"line {number}"] = f"malformed row {row}"
            continue
        actions.add(name, videos.get(name), row["label"] or None)
    return actions


def class_list(path: str | Path) -> list[str]:
    """The class list every split shares: a Kinetics CSV's labels, sorted, or a labels file's lines, in order."""
    path = Path(path)
    if path.suffix == ".csv":
        return _labels(_kinetics_rows(path))
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _kinetics_rows(csv_path: str | Path) -> list[dict[str, str]]:
    with Path(csv_path).open(newline="") as file:
        rows = list(csv.DictReader(file))
    if rows and not set(KINETICS_COLUMNS) <= rows[0].keys():
        raise ValueError(f"{csv_path} lacks Kinetics columns {KINETICS_COLUMNS}; has {sorted(rows[0])}")
    return rows


def _labels(rows: list[dict[str, str]]) -> list[str]:
    return sorted({row["label"] for row in rows if row["label"]})


def something_something_list(labels_json: str | Path, split_json: str | Path, videos_root: str | Path) -> ActionList:
    """Videos of a Something-Something-v2 split, classes ordered by the labels JSON's indices."""
    indices = {name: int(index) for name, index in json.loads(Path(labels_json).read_text()).items()}
    actions = ActionList(sorted(indices, key=indices.__getitem__))
    videos = index_files(videos_root, ".webm")
    for number, entry in enumerate(json.loads(Path(split_json).read_text())):
        if not isinstance(entry, dict) or "id" not in entry:
            actions.skipped[f"entry {number}"] = f"no video id in {entry!r}"
            continue
        template = entry.get("template")
        label = template.replace("[", "").replace("]", "") if isinstance(template, str) else None
        actions.add(str(entry["id"]), videos.get(str(entry["id"])), label)
    return actions


def index_files(root: str | Path, suffix: str) -> dict[str, Path]:
    """Stem -> path of the files ending in ``suffix`` under ``root``, at any depth, hidden files left out."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"videos folder not found: {root}")
    return {path.stem: path for path in sorted(root.rglob(f"*{suffix}")) if not path.name.startswith(".")}


class ActionClipDataset(SkippingDataset):
    """{"video": uint8 (3, T, size, size), "label": int64, "index": video index} from an :class:`ActionList`.

    Evaluation gives ``num_clips`` items per video, clips evenly spread over it, resized on the short side
    and centre-cropped; group predictions by "index" to average them. Training draws a random clip and a
    random resized crop and flip instead (pass ``flip=False`` for Something-Something-v2, whose labels name
    directions). Unreadable videos are skipped when read, like
    :class:`fourd.data.clips.VideoClipDataset`.
    """

    def __init__(
        self,
        actions: ActionList,
        num_frames: int = 16,
        stride: int = 2,
        size: int = 224,
        num_clips: int = 1,
        train: bool = False,
        flip: bool = True,
        max_retries: int = 16,
        backend: str | None = None,
    ) -> None:
        if num_frames < 1 or stride < 1 or num_clips < 1:
            raise ValueError(f"need positive values, got {num_frames=}, {stride=}, {num_clips=}")
        self.actions = actions
        self.classes = actions.classes
        self.num_frames = num_frames
        self.stride = stride
        self.clips_per_entry = num_clips
        self.train = train
        self.backend = backend
        self.transform = ClipTransform(size, train=train, flip=flip)
        super().__init__(actions.names, actions.skipped, max_retries)

    @property
    def num_classes(self) -> int:
        return len(self.actions.classes)

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        frames = read_clip(self.actions.paths[entry], lambda length: self._indices(length, entry, clip), self.backend)
        video = self.transform(torch.from_numpy(frames).permute(0, 3, 1, 2)).permute(1, 0, 2, 3).contiguous()
        return {"video": video, "label": torch.tensor(self.actions.labels[entry], dtype=torch.int64)}

    def _indices(self, length: int, entry: int, clip: int) -> list[int]:
        if self.train:
            # torch seeds each worker differently every epoch, reproducibly under seed_everything(workers=True)
            rng = random.Random(f"{torch.initial_seed()}:{entry}:{clip}")
            return sample_clip_indices(length, self.num_frames, self.stride, rng)
        return spread_clip_indices(length, self.num_frames, self.stride, clip, self.clips_per_entry)


def spread_clip_indices(length: int, num_frames: int, stride: int, clip: int, num_clips: int) -> list[int]:
    """Indices of clip ``clip`` of ``num_clips`` whose starts divide the valid starts evenly (one: centred).

    A video shorter than a clip repeats its last frame, as in :func:`fourd.data.clips.sample_clip_indices`.
    """
    last_start = max(length - ((num_frames - 1) * stride + 1), 0)
    start = (2 * clip + 1) * last_start // (2 * num_clips)
    return [min(start + k * stride, length - 1) for k in range(num_frames)]
