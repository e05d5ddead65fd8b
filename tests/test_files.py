"""Files are never seen half-written, and get the permissions the user's umask gives."""

import os
import stat

import pytest
import torch

from fourd.files import atomic_write
from fourd.weights import save_weights


def test_atomic_write_leaves_previous_file_on_failure(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")

    def failing(tmp):
        open(tmp, "wb").write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    """safetensors creates its files 0600; an export must be as readable as the user's other files."""
    previous = os.umask(umask)
    try:
        path = save_weights(tmp_path / "w.safetensors", {"w": torch.zeros(2)}, "encoder", {})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode
