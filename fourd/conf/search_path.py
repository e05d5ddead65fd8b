"""The user's own configs: a `conf/` folder of the working directory (or `FOURD_CONF=DIR`) is searched before
fourd's packaged configs, so `conf/exp/mine.yaml` runs as `+exp=mine` without touching the package.

`fourd.conf` registers `UserConfigs` with Hydra, which asks it for the search path of every compose and main."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.plugins.search_path_plugin import SearchPathPlugin

PACKAGED_DIR = Path(__file__).resolve().parent


def user_config_dir() -> Path | None:
    """`FOURD_CONF` when set (a warning when it is not a folder), else the working directory's `conf/` when it
    exists."""
    if os.environ.get("FOURD_CONF"):
        chosen = Path(os.environ["FOURD_CONF"]).resolve()
        if not chosen.is_dir():
            message = f"FOURD_CONF={os.environ['FOURD_CONF']} is not a folder: no configs of yours are searched"
            warnings.warn(message, stacklevel=1)
            return None
        return chosen
    local = Path.cwd() / "conf"
    return local.resolve() if local.is_dir() else None


def is_packaged_dir(path: str) -> bool:
    """Whether a search path entry (`file://...` or a plain path) is fourd's packaged config folder."""
    return Path(path.removeprefix("file://")).resolve() == PACKAGED_DIR


class UserConfigs(SearchPathPlugin):
    """Put the user's config folder just before fourd's own, for fourd's commands and `fourd.conf.compose` only."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        user = user_config_dir()
        main = [e for e in search_path.get_path() if e.provider == "main" and is_packaged_dir(e.path)]
        if user is not None and main:
            search_path.prepend("fourd-user", f"file://{user}", anchor=SearchPathQuery(provider="main"))
