"""TAP-Vid point tracking benchmarks read from DeepMind's pickles, and the clip and query logic of point tracks.

A pickle holds a dict name -> video record (TAP-Vid-DAVIS) or a list of records (TAP-Vid-Kinetics, in a
folder of ``*_of_0010.pkl`` shards; TAP-Vid-RGB-Stacking). A record has "video": uint8 (T, H, W, 3), or T
JPEG-encoded frames as a list or a 1-D numpy bytes array (``np.array(tuple_of_jpegs)``, as DeepMind's
``generate_tapvid.py`` writes the Kinetics shards); "points": float (N, T, 2) (x, y) normalised to [0, 1] by
the frame size; and "occluded": bool (N, T).

Items, for the first ``num_frames`` frames resized to ``size`` x ``size`` (see
:func:`~fourd.data.readers.geometry.resize_with_geometry`): "video" uint8 (3, T, size, size), "tracks"
float32 (P, T, 2) pixel (x, y), "occluded" bool (P, T) and "query_points" float32 (P, 3) (t, y, x) in
TAP-Vid's order, t a frame index. Query modes as in TAP-Vid: "first" queries each track at its first
visible frame (tracks never visible in the clip are dropped); "strided" queries every track visible at
frames 0, query_stride, 2 query_stride, ..., repeating a track once per query. P varies between items
unless ``num_points`` is set: then a random subset of the queries (fixed per entry), or all of them padded
with never-visible tracks (all occluded, query (0, 0, 0)), so that items batch.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from fourd.data.readers.base import EntryError, SkippingDataset, fixed_count, read_rgb, stack_frames
from fourd.data.readers.geometry import resize_with_geometry

QUERY_MODES = ("first", "strided")
QUERY_STRIDE = 5  # TAP-Vid strided queries: frames 0, 5, 10, ...
RECORD_KEYS = ("video", "points", "occluded")


class PointTrackDataset(SkippingDataset):
    """Point-track clips with query points: what TAP-Vid and Kubric readers share."""

    def __init__(
        self,
        names: Sequence[str],
        skipped: Mapping[str, str],
        num_frames: int,
        size: int,
        query_mode: str,
        query_stride: int,
        num_points: int | None,
        max_retries: int,
    ) -> None:
        if query_mode not in QUERY_MODES:
            raise ValueError(f"unknown query mode {query_mode!r}; choose one of {QUERY_MODES}")
        if num_frames < 1 or size < 1 or query_stride < 1 or (num_points is not None and num_points < 1):
            raise ValueError(f"need positive values, got {num_frames=}, {size=}, {query_stride=}, {num_points=}")
        self.num_frames = num_frames
        self.size = size
        self.query_mode = query_mode
        self.query_stride = query_stride
        self.num_points = num_points
        super().__init__(names, skipped, max_retries)

    def track_item(
        self, entry: int, video: np.ndarray, tracks: np.ndarray, occluded: np.ndarray
    ) -> dict[str, torch.Tensor]:
        """Item of the first ``num_frames`` frames of uint8 (T, H, W, 3) frames with (N, T, 2) pixel tracks.

        A shorter video repeats its last frame, and its tracks their last position, marked occluded.
        """
        video, tracks, occluded = video[: self.num_frames], tracks[:, : self.num_frames], occluded[:, : self.num_frames]
        missing = self.num_frames - len(video)
        video = np.pad(video, ((0, missing), (0, 0), (0, 0), (0, 0)), mode="edge")
        tracks = np.pad(tracks, ((0, 0), (0, missing), (0, 0)), mode="edge")
        occluded = np.pad(occluded, ((0, 0), (0, missing)), constant_values=True)
        queries, index = sample_queries(occluded, tracks, self.query_mode, query_stride=self.query_stride)
        if len(index) == 0:
            raise EntryError(f"no point visible at a query frame of the first {self.num_frames} frames")
        tracks, occluded = tracks[index], occluded[index]
        if self.num_points is not None:
            rng = np.random.default_rng(entry)
            queries, tracks, occluded = fixed_count([queries, tracks, occluded], [0, 0, True], self.num_points, rng)
        item = {
            "video": torch.from_numpy(video).permute(3, 0, 1, 2),
            "tracks": torch.from_numpy(tracks).float(),
            "occluded": torch.from_numpy(occluded),
            "query_points": torch.from_numpy(queries).float(),
        }
        return resize_with_geometry(item, self.size)


class TapVidDataset(PointTrackDataset):
    """TAP-Vid clips from one pickle or a folder of pickles (see the module docstring).

    Entries are named by their dict key, or ``<pickle stem>/<position>`` in lists; in a folder, the
    pickle's stem prefixes dict keys too. Only the first ``num_frames`` frames of each video stay in
    memory. Malformed records are skipped while loading; undecodable JPEG frames when read.
    """

    def __init__(
        self,
        path: str | Path,
        num_frames: int = 16,
        size: int = 64,
        query_mode: str = "first",
        query_stride: int = QUERY_STRIDE,
        num_points: int | None = None,
        max_retries: int = 16,
    ) -> None:
        path = Path(path)
        files = sorted(path.glob("*.pkl")) if path.is_dir() else [path]
        if not files or not files[0].is_file():
            raise FileNotFoundError(f"no TAP-Vid pickles at {path}")
        self.path = path
        self.records: list[tuple[np.ndarray | list[bytes], np.ndarray, np.ndarray]] = []
        names, skipped = [], {}
        for file in files:
            for name, record in _named_records(file, prefix=f"{file.stem}/" if path.is_dir() else ""):
                try:
                    self.records.append(_first_frames(record, num_frames))
                    names.append(name)
                except EntryError as error:
                    skipped[name] = str(error)
        super().__init__(names, skipped, num_frames, size, query_mode, query_stride, num_points, max_retries)

    def load(self, entry: int, clip: int) -> dict[str, torch.Tensor]:
        frames, points, occluded = self.records[entry]
        video = frames if isinstance(frames, np.ndarray) else stack_frames([read_rgb(frame) for frame in frames])
        height, width = video.shape[1:3]
        return self.track_item(entry, video, points * np.array([width, height], np.float32), occluded)


def check_tracks(num_video_frames: int, points: Any, occluded: Any) -> tuple[np.ndarray, np.ndarray]:
    """Points float32 (N, T, 2) and occlusion bool (N, T) for a video of T frames, or EntryError."""
    try:
        points, occluded = np.asarray(points, np.float32), np.asarray(occluded).astype(bool)
    except (TypeError, ValueError) as error:
        raise EntryError(f"points or occlusion are not arrays: {error}") from error
    if points.ndim != 3 or points.shape[-1] != 2 or len(points) == 0:
        raise EntryError(f"points must be (N, T, 2) with N > 0, got {points.shape}")
    if occluded.shape != points.shape[:2]:
        raise EntryError(f"occlusion {occluded.shape} does not match points {points.shape}")
    if points.shape[1] != num_video_frames or num_video_frames == 0:
        raise EntryError(f"{points.shape[1]} frames of points for {num_video_frames} video frames")
    return points, occluded


def sample_queries(
    gt_occluded: ArrayLike,
    gt_tracks: ArrayLike,
    query_mode: str,
    rng: np.random.Generator | None = None,
    max_queries: int | None = None,
    query_stride: int = QUERY_STRIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """TAP-Vid query sampling for one video: gt_occluded (N, T) bool, gt_tracks (N, T, 2) ``[x, y]``.

    'first': one query per track at its first visible frame; never-visible tracks are dropped. 'strided': one
    query per (track, frame) for frames 0, stride, 2 * stride, ... where the track is visible, ordered by frame
    then track (as the reference). Returns query points (Q, 3) ``[t, y, x]`` and the index of each query's
    track (Q,), so that ``gt_tracks[index]`` / ``gt_occluded[index]`` are its targets. With ``max_queries``, a
    random subset of that many (in the same order) is drawn with ``rng``.
    """
    visible = ~np.asarray(gt_occluded, dtype=bool)
    gt_tracks = np.asarray(gt_tracks, dtype=np.float64)
    if query_mode == "first":
        track = np.flatnonzero(visible.any(axis=1))
        frame = visible[track].argmax(axis=1)
    elif query_mode == "strided":
        frames = np.arange(0, visible.shape[1], query_stride)
        strided_frame, track = np.nonzero(visible[:, frames].T)
        frame = frames[strided_frame]
    else:
        raise ValueError(f"unknown query mode {query_mode!r} (expected 'first' or 'strided')")
    if max_queries is not None and len(track) > max_queries:
        if rng is None:
            raise ValueError("sampling max_queries of the queries needs an rng")
        keep = np.sort(rng.choice(len(track), size=max_queries, replace=False))
        track, frame = track[keep], frame[keep]
    xy = gt_tracks[track, frame]
    return np.stack([frame, xy[:, 1], xy[:, 0]], axis=-1).astype(np.float64), track


def _named_records(file: Path, prefix: str) -> Iterator[tuple[str, Any]]:
    """(name, record) pairs of a pickle holding a dict or a list of records."""
    with file.open("rb") as handle:
        data = pickle.load(handle)
    pairs = data.items() if isinstance(data, Mapping) else enumerate(data)
    for key, record in pairs:
        yield f"{prefix}{key}", record


def _first_frames(record: Any, num_frames: int) -> tuple[np.ndarray | list[bytes], np.ndarray, np.ndarray]:
    """Copies of the first ``num_frames`` frames, points and occlusion of a valid record, or EntryError."""
    if not isinstance(record, Mapping) or not all(key in record for key in RECORD_KEYS):
        found = sorted(record) if isinstance(record, Mapping) else type(record).__name__
        raise EntryError(f"a record needs keys {RECORD_KEYS}, got {found}")
    video = record["video"]
    if isinstance(video, np.ndarray) and video.dtype.kind in "SO":  # encoded frames in an array: bytes or objects
        video = video.tolist()
    if isinstance(video, np.ndarray):
        if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
            raise EntryError(f"video must be uint8 (T, H, W, 3), got {video.dtype} {video.shape}")
        frames = video[:num_frames].copy()
    elif isinstance(video, Sequence) and all(isinstance(frame, bytes) for frame in video):
        frames = list(video[:num_frames])
    else:
        raise EntryError(f"video must be an array or a list of encoded frames, got {type(video).__name__}")
    points, occluded = check_tracks(len(video), record["points"], record["occluded"])
    return frames, points[:, :num_frames].copy(), occluded[:, :num_frames].copy()
