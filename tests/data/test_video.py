from __future__ import annotations

import gc
import os
import signal
import time

import av
import numpy as np
import pytest

from fourd.data.video import VideoReadError, count_frames, one_thread, read_clip, read_frames, write_video
from tests.helpers import assert_quiet
from tests.helpers.videos import (
    BROKEN_KINDS,
    READER_BACKENDS,
    make_frames,
    write_broken_video,
    write_test_video,
    write_yuv444_video,
)


@pytest.mark.parametrize("backend", READER_BACKENDS)
def test_written_video_reads_back(tmp_path, backend):
    frames = make_frames()
    write_video(tmp_path / "clip.mp4", frames)

    assert count_frames(tmp_path / "clip.mp4", backend=backend) == 12
    decoded = read_frames(tmp_path / "clip.mp4", range(12), backend=backend)
    assert decoded.dtype == np.uint8 and decoded.shape == (12, 48, 64, 3)
    assert np.abs(decoded.astype(float) - frames).mean() < 6  # lossy codec, smooth content

    picked = read_frames(str(tmp_path / "clip.mp4"), [11, 0, 5, 5], backend=backend)
    np.testing.assert_array_equal(picked, decoded[[11, 0, 5, 5]])


@pytest.mark.parametrize("backend", READER_BACKENDS)
def test_read_clip_chooses_indices_from_the_frame_count(tmp_path, backend):
    path = write_test_video(tmp_path / "clip.mp4")
    seen = []

    def last_two(num_frames):
        seen.append(num_frames)
        return [num_frames - 2, num_frames - 1]

    assert read_clip(path, last_two, backend=backend).shape == (2, 48, 64, 3)
    assert seen == [12]


@pytest.mark.needs_package("decord")
def test_backends_decode_alike(tmp_path):
    path = write_test_video(tmp_path / "clip.mp4")
    by_decord = read_frames(path, range(12), backend="decord").astype(int)
    by_av = read_frames(path, range(12), backend="av").astype(int)
    assert np.abs(by_decord - by_av).mean() < 2


@pytest.mark.parametrize("size,write", [(2, write_video), (1, write_yuv444_video)])
@pytest.mark.needs_package("decord")
def test_videos_decord_refuses_are_read_through_pyav(tmp_path, size, write):
    import decord

    path = tmp_path / "tiny.mp4"
    write(path, make_frames(num_frames=6, height=size, width=size))
    with pytest.raises(decord.DECORDError):  # decord opens such narrow videos, then fails to copy their frames out
        decord.VideoReader(str(path)).get_batch([0])
    with av.open(str(path)) as container:
        stream = one_thread(container.streams.video[0])
        by_pyav = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
    seen = []

    def last_two(num_frames):
        seen.append(num_frames)
        return [num_frames - 1, 0]

    assert count_frames(path, backend="decord") == 6
    np.testing.assert_array_equal(read_frames(path, [5, 0, 3], backend="decord"), by_pyav[[5, 0, 3]])
    np.testing.assert_array_equal(read_clip(path, last_two, backend="decord"), by_pyav[[5, 0]])
    assert seen == [6]  # the indices are chosen once, so the fallback reads the frames decord would have


def test_write_video_pads_odd_sizes_and_leaves_no_temporary_files(tmp_path):
    write_video(tmp_path / "odd.mp4", make_frames(num_frames=3, height=47, width=63))

    assert read_frames(tmp_path / "odd.mp4", [0], backend="av").shape == (1, 48, 64, 3)
    assert [path.name for path in tmp_path.iterdir()] == ["odd.mp4"]


def test_write_video_rejects_non_uint8_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "bad.mp4", make_frames().astype(np.float32))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("backend", READER_BACKENDS)
@pytest.mark.parametrize("kind", [*BROKEN_KINDS, "audio_only", "missing"])
def test_unreadable_files_raise_video_read_error(tmp_path, capfd, backend, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind != "missing":
        write_broken_video(path, kind)

    with pytest.raises(VideoReadError, match=f"{kind}.mp4") as error:
        read_frames(path, range(12), backend=backend)
    assert error.value.path == path and error.value.reason and str(path) not in error.value.reason
    if kind != "truncated":  # a truncated file keeps its header, so only decoding fails
        with pytest.raises(VideoReadError, match=f"{kind}.mp4"):
            count_frames(path, backend=backend)
    assert_quiet(capfd.readouterr().err)  # the error is the only word on it: no decoder's log line


@pytest.mark.parametrize("backend", READER_BACKENDS)
def test_out_of_range_indices_raise_video_read_error(tmp_path, backend):
    path = write_test_video(tmp_path / "clip.mp4")
    with pytest.raises(VideoReadError, match="outside 0..11"):
        read_frames(path, [12], backend=backend)


def test_unknown_backend_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown video backend"):
        count_frames(write_test_video(tmp_path / "clip.mp4"), backend="opencv")


@pytest.mark.needs_package("decord")
def test_a_video_decord_cannot_decode_prints_no_ffmpeg_lines(tmp_path, capfd):
    path = write_broken_video(tmp_path / "truncated.mp4", "truncated")
    capfd.readouterr()
    with pytest.raises(VideoReadError):
        read_frames(path, range(12), backend="decord")
    assert capfd.readouterr().err == ""  # the error says why; ffmpeg's own lines (written by the C library) do not


@pytest.mark.parametrize("backend", READER_BACKENDS)
def test_the_decoder_scales_frames_to_a_shorter_side_keeping_the_aspect(tmp_path, backend):
    path = write_test_video(tmp_path / "v.mp4", num_frames=4)  # 48x64
    full = read_frames(path, [0, 3], backend)
    small = read_clip(path, lambda n: [0, 3], backend, short_side=24)
    assert small.shape == (2, 24, 32, 3)
    # the same pictures at half the size: each 2x2 block's mean, within the codec's and the scaler's error
    halved = full.reshape(2, 24, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(small.astype(float) - halved).mean() < 6


@pytest.mark.parametrize("backend", READER_BACKENDS)
def test_readers_of_good_and_broken_videos_can_be_freed_in_a_forked_worker(tmp_path, backend):
    """Readers left in cycles may first be freed by the garbage collector of a forked DataLoader worker; freeing a
    decoder there must not wait for threads the fork did not copy (it hung CI)."""
    gc.disable()
    try:
        write_video(tmp_path / "clip.mp4", make_frames())
        read_frames(tmp_path / "clip.mp4", [0, 11], backend=backend)
        with pytest.raises(VideoReadError):  # opened, then failed: the traceback holds the reader
            read_frames(tmp_path / "clip.mp4", [0, 12], backend=backend)
        pid = os.fork()
        if pid == 0:
            gc.collect()
            os._exit(0)
        finished, deadline = False, time.monotonic() + 30
        while not finished and time.monotonic() < deadline:
            finished = os.waitpid(pid, os.WNOHANG) != (0, 0)
            time.sleep(0.05)
        if not finished:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    finally:
        gc.enable()
    assert finished, "the forked process hung freeing PyAV codecs"
