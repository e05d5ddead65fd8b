"""Small real video files for the data tests: smooth good ones and the usual kinds of broken ones."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from fourd.data.video import one_thread, write_video

READER_BACKENDS = [
    pytest.param("decord", marks=pytest.mark.needs_package("decord")),
    "av",
]
BROKEN_KINDS = ("empty", "truncated", "text")  # what a scraped dataset typically holds


def make_frames(
    num_frames: int = 12, height: int = 48, width: int = 64, colour: tuple[int, int, int] = (60, 120, 180)
) -> np.ndarray:
    """uint8 (T, H, W, 3): a base colour with smooth stripes drifting right a little every frame."""
    t, y, x = np.meshgrid(np.arange(num_frames), np.arange(height), np.arange(width), indexing="ij")
    stripes = 40 * np.sin(2 * np.pi * (x - 2 * t) / 32 + y / 16)
    return np.clip(np.asarray(colour) + stripes[..., None], 0, 255).astype(np.uint8)


def write_test_video(path: Path, **frame_options) -> Path:
    """A 12-frame 48x64 mp4 (by default) at ``path``."""
    write_video(path, make_frames(**frame_options))
    return path


def write_yuv444_video(path: Path, frames: np.ndarray) -> Path:
    """An H.264 mp4 of ``frames`` at their own size, odd ones too (yuv444p subsamples no chroma, needs no padding)."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = one_thread(container.add_stream("libx264", rate=8))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_broken_video(path: Path, kind: str) -> Path:
    """An unreadable file named like a video: one of BROKEN_KINDS, or "audio_only" (no video stream)."""
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = write_test_video(path).read_bytes()
        path.write_bytes(data[: int(0.3 * len(data))])
    elif kind == "text":
        path.write_text("this is a text file, not a video\n")
    elif kind == "audio_only":
        with av.open(str(path), "w") as container:
            stream = one_thread(container.add_stream("aac", rate=16000))
            samples = np.zeros((1, 1024), np.float32)
            silence = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            silence.sample_rate = 16000
            container.mux(stream.encode(silence))
            container.mux(stream.encode())
    else:
        raise ValueError(kind)
    return path
