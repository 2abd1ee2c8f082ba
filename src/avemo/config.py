"""Where avemo finds data and keeps its cache: one setting each (``AVEMO_DATA``, ``AVEMO_CACHE``)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The datasets folder: ``$AVEMO_DATA``, else ``../shared/datasets`` from the cwd or the repository."""
    env = os.environ.get("AVEMO_DATA")
    if env:
        return Path(env).expanduser().resolve()
    for base in (Path.cwd(), _REPO_ROOT):
        candidate = (base / ".." / "shared" / "datasets").resolve()
        if candidate.is_dir():
            return candidate
    return (Path.cwd() / ".." / "shared" / "datasets").resolve()


def cache_root() -> Path:
    """The feature cache folder: ``$AVEMO_CACHE``, else ``~/.cache/avemo``."""
    env = os.environ.get("AVEMO_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "avemo"
