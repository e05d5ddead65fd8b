"""Files that readers never see half-written, outputs that replace nothing by accident, and stable names for cached
content."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fourd.errors import FourdError, error_chain

NEARLY_FULL_BYTES = 1 << 20  # a write that failed with less than this free on its disk failed for want of space


class DiskFullError(FourdError, OSError):
    """A write failed because its disk is full."""


def out_of_space(error: BaseException, folder: Path) -> bool:
    """Whether `error` (or one it chains) says no space is left, or `folder`'s disk is all but full: some writers
    (torch.save) lose the errno on the way up."""
    if any(isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) for e in error_chain(error)):
        return True
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES


@contextmanager
def space_checked(path: str | Path) -> Iterator[None]:
    """Re-raise a failed write of `path` on a full disk as DiskFullError naming the folder."""
    folder = Path(path).parent
    try:
        yield
    except Exception as error:
        if isinstance(error, FourdError) or not out_of_space(error, folder):
            raise
        raise DiskFullError(
            f"no space left on {folder} (writing {Path(path).name}): free some, or write elsewhere"
        ) from error


def creation_mode(directory: bool = False) -> int:
    """The permissions a new file (or folder) gets under this process's umask, e.g. 0o644 under 022."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call write(tmp_path) then rename over `path`, so readers never see a half-written file.

    The temporary is hidden and ends in .tmp (never a video or checkpoint name); it is removed on failure.
    The file gets the umask's permissions, whatever `write` created it with (safetensors: 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with space_checked(path):
            write(tmp)
        os.chmod(tmp, creation_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@contextmanager
def file_lock(path: str | Path, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive advisory lock (flock) on `path` for the block: True once held; False at once when
    `wait` is off and another process holds it. The kernel drops a dead process's lock, so a killed run never
    blocks the next one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, creation_mode())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file or folder (after links; a path that does not exist compares resolved)."""
    a, b = Path(a), Path(b)
    try:
        return a.samefile(b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output(
    path: str | Path,
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    kind: str = "file",
    made_by: Callable[[Path], bool] | None = None,
    how: str = "--overwrite",
) -> Path:
    """Refuse, before any work, an output that would replace what the command did not make: an existing file, or
    a folder that holds anything `made_by(folder)` does not recognise as this command's own (an empty folder is
    free). `overwrite` (`how` names the switch in the message) allows it, except where the output is one of the
    `inputs`: that is refused even then. Returns `path`; raises FileExistsError with a one-line message."""
    path = Path(path)
    for source in inputs:
        if source is not None and same_path(path, source):
            raise FileExistsError(f"{path} is also an input ({source}): choose another output")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise FileExistsError(f"{path}: {blocking} is a file, not a folder: choose another output")
    if not path.exists() and not path.is_symlink():
        return path
    if kind == "folder":
        if not path.is_dir():
            raise FileExistsError(f"{path} is a file, not a folder: choose another output folder")
        if overwrite or not any(path.iterdir()) or (made_by is not None and made_by(path)):
            return path
        raise FileExistsError(
            f"{path} already holds files this command did not write: choose another output folder, or pass {how} "
            "to write into it on purpose"
        )
    if path.is_dir():
        raise FileExistsError(f"{path} is a folder: give a file name for the output")
    if overwrite:
        return path
    raise FileExistsError(f"{path} exists: choose another output, or pass {how} to replace it on purpose")


def content_key(**identity: Any) -> str:
    """A short stable hash of everything that determines a cached result (settings, model identity, data)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
