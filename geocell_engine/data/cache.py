"""Where geocell keeps built data (``$GEOCELL_CACHE``, else ``~/.cache/geocell``).

Nothing is created at import time; callers create the folders they write.

Example:
    >>> str(resolve_cache_dir("/tmp/gc"))
    '/tmp/gc'
    >>> default_cache_dir().name
    'geocell'
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "default_cache_dir", "resolve_cache_dir"]

#: Environment variable that moves the cache.
CACHE_ENV = "GEOCELL_CACHE"


def default_cache_dir() -> Path:
    """``$GEOCELL_CACHE`` if set (``~`` expanded), else ``$XDG_CACHE_HOME/geocell`` or ``~/.cache/geocell``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "geocell"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir`` if given, else :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
