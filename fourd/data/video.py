"""Read frames from video files (decord, or PyAV where decord is missing or fails) and write mp4 files (PyAV).

Every reader is opened inside the call that needs it and freed when it returns or fails, so nothing is open
when DataLoader workers fork, and every failure surfaces as :class:`VideoReadError`.
"""

from __future__ import annotations

import functools
import importlib.util
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import av
import numpy as np

from fourd.errors import FourdError, error_chain
from fourd.files import atomic_write

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm")

IndexChooser = Callable[[int], Sequence[int]]
T = TypeVar("T")


class VideoReadError(FourdError, RuntimeError):
    """A video could not be read: missing, empty, corrupt, or undecodable."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot read video {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@functools.cache
def video_backend() -> str:
    """The default reader: "decord" (PyAV for the videos decord fails on) where it is installed, else "av" (PyAV)."""
    return "decord" if importlib.util.find_spec("decord") is not None else "av"


def count_frames(path: str | Path, backend: str | None = None) -> int:
    """Number of frames in the video at ``path``."""
    count = _COUNTERS[_backend_name(backend)]
    return _guarded(path, lambda: _require_frames(count(Path(path))))


def read_frames(path: str | Path, indices: Sequence[int], backend: str | None = None) -> np.ndarray:
    """Frames ``indices`` of the video at ``path`` as uint8 RGB (len(indices), H, W, 3)."""
    return read_clip(path, lambda num_frames: indices, backend)


def read_clip(
    path: str | Path, choose_indices: IndexChooser, backend: str | None = None, short_side: int | None = None
) -> np.ndarray:
    """Like :func:`read_frames`, with indices picked by ``choose_indices(num_frames)`` in the same opening.

    ``short_side``: the decoder scales the frames so that their shorter side has this many pixels (aspect kept),
    which costs less than decoding at full size and resizing afterwards. None: the video's own size."""
    read = _READERS[_backend_name(backend)]
    choose_once = functools.cache(choose_indices)  # a fallback reader gets the same frames for the same length
    return _guarded(path, lambda: read(Path(path), choose_once, short_side))


def scaled_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """(height, width) with the shorter side at ``short_side`` (even sizes, aspect kept); unchanged for None."""
    if short_side is None:
        return height, width
    scale = short_side / min(height, width)
    return max(2, round(height * scale / 2) * 2), max(2, round(width * scale / 2) * 2)


def write_video(
    path: str | Path, frames: np.ndarray, fps: int = 8, codec_options: dict[str, str] | None = None
) -> None:
    """Write uint8 RGB frames (T, H, W, 3) to an mp4 file, atomically (`codec_options`: the encoder's, e.g. "g").

    Odd heights or widths are padded by repeating the last row or column (yuv420p needs even sizes).
    """
    path = Path(path)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"expected uint8 frames (T, H, W, 3) with T > 0, got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"

    def encode(tmp: Path) -> None:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = one_thread(container.add_stream(codec, rate=fps, options=codec_options or {}))
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())

    atomic_write(path, encode)


def one_thread(stream: av.stream.Stream) -> av.stream.Stream:
    """``stream`` with its codec on the calling thread alone.

    PyAV frees a stream when the garbage collector breaks its cycle with the container, which may happen in a
    forked DataLoader worker; freeing a codec's thread pool there waits forever for threads the fork did not copy.
    """
    stream.thread_count = 1
    return stream


def _backend_name(backend: str | None) -> str:
    name = backend or video_backend()
    if name not in _READERS:
        raise ValueError(f"unknown video backend {name!r}; choose one of {sorted(_READERS)}")
    return name


def _guarded(path: str | Path, action: Callable[[], T]) -> T:
    """Run ``action`` on the file at ``path``, turning any failure into VideoReadError."""
    if not Path(path).is_file():
        raise VideoReadError(path, "no such file")
    if Path(path).stat().st_size == 0:  # checked up front: decord builds differ on empty files
        raise VideoReadError(path, "empty file (0 bytes)")
    try:
        return action()
    except VideoReadError:
        raise
    except Exception as error:  # decord: RuntimeError, DECORDError; PyAV: av.FFmpegError; IndexError...
        _free_readers(error)
        detail = error.strerror if isinstance(error, av.FFmpegError) else error  # FFmpeg's message, no errno or path
        raise VideoReadError(path, f"{type(error).__name__}: {detail}") from error


def _free_readers(error: BaseException) -> None:
    """Free the readers that the frames of ``error``'s traceback (and of the errors it chains) hold.

    Without this they live in a cycle with the error until the garbage collector breaks it, perhaps in a forked
    DataLoader worker, where freeing a decoder's threads waits forever for threads the fork did not copy.
    """
    for chained in error_chain(error):
        traceback.clear_frames(chained.__traceback__)


def _require_frames(num_frames: int) -> int:
    if num_frames <= 0:
        raise ValueError("the video has no frames")
    return num_frames


def _checked_indices(indices: Sequence[int], num_frames: int) -> list[int]:
    indices = [int(index) for index in indices]
    if not indices:
        raise ValueError("no frame indices requested")
    if min(indices) < 0 or max(indices) >= _require_frames(num_frames):
        raise ValueError(f"frame indices {min(indices)}..{max(indices)} outside 0..{num_frames - 1}")
    return indices


@functools.cache
def _decord():
    """decord, imported on first use, with ffmpeg's own log lines off (a failure is one VideoReadError)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    return decord


def _open_decord(path: Path, short_side: int | None = None):
    """decord's reader of `path`, after PyAV read its header: a file PyAV cannot open fails here, before decord's
    C++ logger prints its own `ERROR opening` line for it."""
    decord = _decord()
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        height, width = scaled_size(stream.height, stream.width, short_side) if short_side else (-1, -1)
    return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, width=width, height=height)


def _count_decord(path: Path) -> int:
    return len(_open_decord(path))


def _read_decord(path: Path, choose_indices: IndexChooser, short_side: int | None) -> np.ndarray:
    reader = _open_decord(path, short_side)
    indices = _checked_indices(choose_indices(len(reader)), len(reader))
    return reader.get_batch(indices).asnumpy()


def _count_av(path: Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = one_thread(container.streams.video[0])
        # containers without a frame count in their header (e.g. webm) need a decoding pass
        return stream.frames or sum(1 for _ in container.decode(stream))


def _read_av(path: Path, choose_indices: IndexChooser, short_side: int | None) -> np.ndarray:
    """Plain sequential decoding up to the last wanted frame: slower than decord's seeking, but simple."""
    num_frames = _count_av(path)
    indices = _checked_indices(choose_indices(num_frames), num_frames)
    wanted, frames = set(indices), {}
    with av.open(str(path)) as container:
        stream = one_thread(container.streams.video[0])
        height, width = scaled_size(stream.height, stream.width, short_side)
        for position, frame in enumerate(container.decode(stream)):
            if position in wanted:
                frames[position] = frame.to_ndarray(format="rgb24", height=height, width=width)
            if len(frames) == len(wanted):
                break
    if len(frames) < len(wanted):
        # PyAV stops quietly where a stream is truncated, short of the frames its header promised
        raise ValueError(f"decoded {len(frames)} of {len(wanted)} requested frames (header: {num_frames})")
    return np.stack([frames[index] for index in indices])


def _or_av(decord_action: Callable[..., T], av_action: Callable[..., T]) -> Callable[..., T]:
    """``decord_action``, or ``av_action`` where decord fails (it refuses some valid videos, very narrow ones
    among them); a video that neither reads fails with PyAV's reason."""

    def action(path: Path, *args) -> T:
        try:
            return decord_action(path, *args)
        except Exception:
            return av_action(path, *args)

    return action


_COUNTERS: dict[str, Callable[[Path], int]] = {"decord": _or_av(_count_decord, _count_av), "av": _count_av}
_READERS: dict[str, Callable[[Path, IndexChooser, int | None], np.ndarray]] = {
    "decord": _or_av(_read_decord, _read_av),
    "av": _read_av,
}
