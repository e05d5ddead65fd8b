"""Files that readers never see half-written, and stable names for cached content."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call write(tmp_path) then rename over `path`, so readers never see a half-written file.

    The temporary is hidden and ends in .tmp (never a video or checkpoint name); it is removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # created by `write`, with the usual permissions
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def content_key(**identity: Any) -> str:
    """A short stable hash of everything that determines a cached result (settings, model identity, data)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
