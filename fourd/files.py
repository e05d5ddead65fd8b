"""Files that readers never see half-written, and stable names for cached content."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
        write(tmp)
        os.chmod(tmp, creation_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def content_key(**identity: Any) -> str:
    """A short stable hash of everything that determines a cached result (settings, model identity, data)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
