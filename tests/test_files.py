"""Files are never seen half-written, and get the permissions the user's umask gives."""

import errno
import os
import stat
from types import SimpleNamespace

import pytest
import torch

from fourd.files import DiskFullError, atomic_write, check_output
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


def test_an_existing_file_is_replaced_only_on_purpose(tmp_path):
    out = tmp_path / "out.bin"
    assert check_output(out) == out  # nothing there: free
    out.write_bytes(b"yours")
    with pytest.raises(FileExistsError, match="pass --overwrite to replace it on purpose"):
        check_output(out)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        check_output(out, how="overwrite=true")
    assert check_output(out, overwrite=True) == out
    with pytest.raises(FileExistsError, match="is a folder"):
        check_output(tmp_path, overwrite=True)


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(b"input")
    (tmp_path / "link.bin").symlink_to(src)
    for out in (src, tmp_path / "sub" / ".." / "in.bin", tmp_path / "link.bin"):
        with pytest.raises(FileExistsError, match="is also an input"):
            check_output(out, [None, src], overwrite=True)
    with pytest.raises(FileExistsError, match="is also an input"):
        check_output(tmp_path, [tmp_path], overwrite=True, kind="folder")


def test_a_folder_is_written_into_only_when_empty_ours_or_on_purpose(tmp_path):
    folder = tmp_path / "out"
    assert check_output(folder, kind="folder") == folder  # missing
    folder.mkdir()
    assert check_output(folder, kind="folder") == folder  # empty
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not write: choose another output folder, or pass --overwrite"):
        check_output(folder, kind="folder")
    assert check_output(folder, kind="folder", made_by=lambda p: (p / "notes.txt").is_file()) == folder
    assert check_output(folder, kind="folder", made_by=lambda p: False, overwrite=True) == folder
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        check_output(folder / "notes.txt", kind="folder", overwrite=True)


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_output_below_a_file_names_that_file(tmp_path, kind):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes.txt is a file, not a folder: choose another output$"):
        check_output(tmp_path / "notes.txt" / "sub" / "out", kind=kind)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_write_on_a_full_disk_names_the_folder_and_leaves_nothing(tmp_path):
    def fill(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=rf"^no space left on {tmp_path} \(writing out.bin\): free some"):
        atomic_write(tmp_path / "out.bin", fill)
    assert not list(tmp_path.iterdir())


def test_a_writer_that_loses_the_errno_on_a_full_disk_is_named_too(tmp_path, monkeypatch):
    """torch.save on a full disk raises RuntimeError("... unexpected pos ..."): the disk's free space tells."""

    def fail(tmp):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    with pytest.raises(RuntimeError, match="unexpected pos"):  # a disk with room: the writer's own error
        atomic_write(tmp_path / "step.ckpt", fail)
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=3, f_frsize=4096))
    with pytest.raises(DiskFullError, match="no space left on"):
        atomic_write(tmp_path / "step.ckpt", fail)
