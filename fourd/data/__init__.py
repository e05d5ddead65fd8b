"""Video data: procedural clips for offline runs, and clips of real videos with robust decoding."""

from fourd.data.clips import VideoClipDataset, list_videos, sample_clip_indices
from fourd.data.synthetic import SyntheticVideoDataset
from fourd.data.transforms import ClipTransform
from fourd.data.video import (
    VIDEO_EXTENSIONS,
    VideoReadError,
    count_frames,
    read_clip,
    read_frames,
    video_backend,
    write_video,
)

__all__ = [
    "VIDEO_EXTENSIONS",
    "ClipTransform",
    "SyntheticVideoDataset",
    "VideoClipDataset",
    "VideoReadError",
    "count_frames",
    "list_videos",
    "read_clip",
    "read_frames",
    "sample_clip_indices",
    "video_backend",
    "write_video",
]
