"""A small Perception Test point-tracking layout written from the format's specification (google-deepmind/
perception_test): ``point_tracking_<split>.json`` and ``videos/<video_id>.mp4``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fourd.probe.metrics.tapvid import tapvid_metrics
from tests.helpers.videos import write_test_video

NUM_FRAMES, HEIGHT, WIDTH = 16, 48, 64
RASTER = 256  # the official baseline scores on a 256 x 256 raster


def point_track(track_id: int, frame_ids: list[int], xy: np.ndarray) -> dict:
    """One annotation: ``points`` 2 x K, a row of y then a row of x, normalised, at the listed frames."""
    xy = np.asarray(xy, np.float64)
    points = [xy[:, 1].tolist(), xy[:, 0].tolist()]
    return {"id": track_id, "label": "point", "parent_objects": [0], "frame_ids": frame_ids, "points": points}


def video_record(video_id: str, split: str, tracks: list[dict], num_frames: int = NUM_FRAMES) -> dict:
    metadata = {
        "split": split,
        "video_id": video_id,
        "num_frames": num_frames,
        "resolution": [HEIGHT, WIDTH],
        "frame_rate": 30,
        "is_camera_moving": False,
    }
    return {"metadata": metadata, "point_tracking": tracks}


def random_tracks(rng: np.random.Generator, count: int) -> list[dict]:
    """Points drifting at random speeds (up to 0.01 of the frame per frame), each listed at its first frame and
    at 4 random later ones."""
    tracks = []
    for track_id in range(count):
        start = int(rng.integers(0, NUM_FRAMES - 5))
        frame_ids = [start, *sorted(rng.choice(np.arange(start + 1, NUM_FRAMES), size=4, replace=False).tolist())]
        elapsed = np.array(frame_ids, np.float64)[:, None] - start
        xy = rng.uniform(0.3, 0.7, 2) + rng.uniform(-0.01, 0.01, 2) * elapsed
        tracks.append(point_track(track_id, frame_ids, xy))
    return tracks


def write_perception_test(root: Path, split: str, records: dict[str, dict], videos: list[str]) -> Path:
    """The split's JSON and an mp4 of NUM_FRAMES frames for each of ``videos`` (kept where already written)."""
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / f"point_tracking_{split}.json").write_text(json.dumps(records))
    for video_id in videos:
        if not (root / "videos" / f"{video_id}.mp4").exists():
            write_test_video(root / "videos" / f"{video_id}.mp4", num_frames=NUM_FRAMES, height=HEIGHT, width=WIDTH)
    return root


def static_baseline_average_jaccard(records: dict[str, dict]) -> float:
    """The official static baseline (each point held at its query point, always visible) scored as the official
    notebook does: per video, TAP-Vid 'first' metrics on a 256 x 256 raster, frames not listed occluded; the mean
    over videos with point tracks."""
    per_video = []
    for record in records.values():
        tracks = record["point_tracking"]
        if not tracks:
            continue
        num_frames = record["metadata"]["num_frames"]
        gt_tracks = np.zeros((len(tracks), num_frames, 2))
        gt_occluded = np.ones((len(tracks), num_frames), bool)
        queries = []
        for n, track in enumerate(tracks):
            frames, (y, x) = track["frame_ids"], RASTER * np.asarray(track["points"])
            gt_tracks[n, frames] = np.stack([x, y], -1)
            gt_occluded[n, frames] = False
            queries.append([frames[0], y[0], x[0]])
        queries = np.array(queries)
        held = np.broadcast_to(queries[:, None, [2, 1]], gt_tracks.shape)
        metrics = tapvid_metrics(
            queries[None], gt_occluded[None], gt_tracks[None], np.zeros_like(gt_occluded)[None], held[None], "first"
        )
        per_video.append(metrics["average_jaccard"][0])
    return float(np.mean(per_video))
