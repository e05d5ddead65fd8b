"""Perception Test point tracking (the paper's point-tracking test set): one JSON of annotations per split, mp4s.

Layout under ``root``: ``point_tracking_<split>.json`` (split ``train`` or ``valid``) and
``videos/<video_id>.mp4`` (about 30 fps). The JSON maps each video id to ``{"metadata": {"num_frames": T,
"resolution": [H, W], ...}, "point_tracking": [{"id", "label", "frame_ids": [K ints], "points": 2 x K}, ...]}``:
``points`` holds a row of y and a row of x, normalised to [0, 1], at the listed frames. A point is occluded at
every frame not listed (its position there is interpolated, and never scored) and queried at its first listed
frame of a clip.

Each video is cut into non-overlapping clips of ``num_frames`` frames ``stride`` apart, named
``<video_id>/<first frame>``; clips where no point is annotated are left out, and so are videos whose
``point_tracking`` list is empty (as the official baseline does). Items are those of
:class:`~fourd.data.readers.tapvid.PointTrackDataset`. Tracks without frames (named ``<video_id>/track <id>``),
malformed videos and videos whose file is missing are skipped at construction; undecodable videos when read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fourd.data.readers.base import EntryError, clip_windows
from fourd.data.readers.tapvid import QUERY_STRIDE, PointTrackDataset
from fourd.data.video import read_frames
from fourd.errors import FourdError

Track = tuple[np.ndarray, np.ndarray]  # listed frames (K,) ascending, normalised (x, y) there (K, 2)


class PerceptionTestDataset(PointTrackDataset):
    """Point-track clips of the Perception Test videos of ``split`` (see the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        split: str = "valid",
        num_frames: int = 16,
        stride: int = 1,
        size: int = 64,
        query_mode: str = "first",
        query_stride: int = QUERY_STRIDE,
        num_points: int | None = None,
        max_retries: int = 16,
        backend: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.backend = backend
        self.clips: list[tuple[Path, np.ndarray, list[Track]]] = []  # video file, frames of the clip, tracks
        names, skipped = [], {}
        for video_id, record in sorted(read_annotations(self.root / f"point_tracking_{split}.json").items()):
            try:
                num_video_frames, tracks = _video_tracks(video_id, record, skipped)
            except EntryError as error:
                skipped[video_id] = str(error)
                continue
            if not tracks:
                continue  # no point tracks: left out, as by the official baseline
            path = self.root / "videos" / f"{video_id}.mp4"
            windows = clip_windows(num_video_frames, num_frames, stride)
            if not path.is_file() or not windows:
                missing = not path.is_file()
                skipped[video_id] = f"no video videos/{path.name}" if missing else f"{num_video_frames} frames: too few"
                continue
            listed = np.concatenate([frames for frames, _ in tracks])
            for window in windows:
                frames = np.arange(num_video_frames)[window]
                if np.isin(frames, listed).any():
                    self.clips.append((path, frames, tracks))
                    names.append(f"{video_id}/{frames[0]}")
        super().__init__(names, skipped, num_frames, size, query_mode, query_stride, num_points, max_retries)

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        path, frames, tracks = self.clips[entry]
        video = read_frames(path, frames.tolist(), self.backend)
        height, width = video.shape[1:3]
        points, occluded = tracks_at(tracks, frames)
        return self.track_item(entry, video, points * np.array([width, height], np.float32), occluded)


def read_annotations(path: Path) -> dict[str, Any]:
    """The video id -> record dict of an annotation JSON; FileNotFoundError or FourdError where unusable."""
    if not path.is_file():
        raise FileNotFoundError(f"no Perception Test annotations {path}")
    try:
        annotations = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FourdError(f"{path}: not JSON: {error}") from error
    if not isinstance(annotations, dict):
        raise FourdError(f"{path}: a dict of video id -> record expected, got {type(annotations).__name__}")
    return annotations


def tracks_at(tracks: list[Track], frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalised (x, y) float32 (N, T, 2) and occlusion bool (N, T) of ``tracks`` at ``frames``."""
    points = np.zeros((len(tracks), len(frames), 2), np.float32)
    occluded = np.ones((len(tracks), len(frames)), bool)
    for n, (listed, xy) in enumerate(tracks):
        occluded[n] = ~np.isin(frames, listed)
        points[n] = np.stack([np.interp(frames, listed, xy[:, axis]) for axis in (0, 1)], -1)
    return points, occluded


def _video_tracks(video_id: str, record: Any, skipped: dict[str, str]) -> tuple[int, list[Track]]:
    """The frame count and usable tracks of a video record; unusable tracks go to ``skipped``; EntryError."""
    try:
        num_frames, annotations = int(record["metadata"]["num_frames"]), list(record["point_tracking"])
    except (KeyError, TypeError, ValueError) as error:
        raise EntryError(f"malformed record (needs metadata.num_frames and point_tracking): {error!r}") from error
    tracks = []
    for number, annotation in enumerate(annotations):
        name = f"{video_id}/track {annotation.get('id', number) if isinstance(annotation, dict) else number}"
        try:
            tracks.append(_track(annotation))
        except EntryError as error:
            skipped[name] = str(error)
    if annotations and not tracks:
        raise EntryError(f"none of its {len(annotations)} tracks is usable")
    return num_frames, tracks


def _track(annotation: Any) -> Track:
    try:
        listed = np.asarray(annotation["frame_ids"], np.int64)
        yx = np.asarray(annotation["points"], np.float64)
    except (KeyError, TypeError, ValueError) as error:
        raise EntryError(f"malformed track (needs frame_ids and points): {error!r}") from error
    if listed.ndim != 1 or len(listed) == 0:
        raise EntryError("no frames")
    if yx.shape != (2, len(listed)):
        raise EntryError(f"points of shape {yx.shape} for {len(listed)} frames (expected 2 x {len(listed)})")
    order = np.argsort(listed)
    return listed[order], yx[::-1].T[order]
