"""The server's settings: one frozen record, read from ``AVEMO_SERVE_*`` environment variables (and
``AVEMO_API_KEY``), each overridable by ``avemo serve``'s options."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from avemo.errors import AvemoError


def default_data_dir(environ: dict[str, str] | None = None) -> Path:
    """``$AVEMO_SERVE_DIR``, else ``$XDG_DATA_HOME/avemo/serve`` (``~/.local/share/avemo/serve``)."""
    env = os.environ if environ is None else environ
    if env.get("AVEMO_SERVE_DIR"):
        return Path(env["AVEMO_SERVE_DIR"]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "avemo" / "serve"


def default_workers() -> int:
    """One analysis process per two cores (an analysis already runs its face and voice paths in
    parallel), at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


URL_MODES = ("public", "any", "off")


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Sizes in MB (10^6 bytes), times in seconds."""

    data_dir: Path  #: SQLite database, uploads and results (``AVEMO_SERVE_DIR``)
    host: str = "127.0.0.1"  #: loopback only unless told otherwise
    port: int = 8000
    workers: int = 1  #: analysis processes; each loads the models once
    max_upload_mb: float = 512.0  #: largest accepted upload
    max_duration_s: float = 1800.0  #: longest accepted media (30 min)
    job_timeout_s: float = 900.0  #: an analysis running longer is stopped and its job failed
    wait_s: float = 60.0  #: longest ``POST /v1/analyze?wait=true`` holds the request before answering 202
    max_queued: int = 1000  #: jobs waiting at most; more are refused with 503
    api_key: str | None = None  #: when set, required on every route but ``/healthz`` (``AVEMO_API_KEY``)
    cors_origins: tuple[str, ...] = ()  #: origins allowed by CORS; empty: CORS off
    live_sessions: int = 2  #: concurrent ``/v1/live`` WebSocket sessions
    live_max_s: float = 1800.0  #: longest live session (media seconds)
    preview_side: int = 480  #: longer side of the browser preview made for videos a browser cannot play
    #: jobs from an http(s) URL (``POST /v1/analyze?url=``): ``public`` (only from public addresses, the
    #: default), ``any`` (private ones too: an intranet), ``off`` (``AVEMO_SERVE_URLS``)
    urls: str = "public"
    analyzer: tuple[tuple[str, Any], ...] = ()  #: extra :class:`~avemo.inference.analyzer.Analyzer` settings

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1_000_000)

    def check(self) -> Settings:
        """The settings themselves, or :class:`AvemoError` naming the first bad one."""
        for name in ("max_upload_mb", "max_duration_s", "job_timeout_s", "live_max_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise AvemoError(f"serve setting {name} must be a positive number, got {value!r}")
        if not (isinstance(self.wait_s, int | float) and 0 <= self.wait_s < math.inf):
            raise AvemoError(f"serve setting wait_s must be >= 0, got {self.wait_s!r}")
        for name in ("workers", "max_queued", "live_sessions", "preview_side"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= (0 if name == "live_sessions" else 1)):
                raise AvemoError(f"serve setting {name} must be a positive integer, got {value!r}")
        if not (isinstance(self.port, int) and 0 <= self.port < 65536):
            raise AvemoError(f"serve setting port must be 0-65535, got {self.port!r}")
        if self.urls not in URL_MODES:
            raise AvemoError(f"serve setting urls must be one of {', '.join(URL_MODES)}, got {self.urls!r}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise AvemoError("AVEMO_API_KEY must be at least 8 characters long")
        return self

    def with_(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (``None`` values are ignored), checked."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None}).check()


# environment variable -> (field, type)
_ENV: dict[str, tuple[str, type]] = {
    "AVEMO_SERVE_HOST": ("host", str),
    "AVEMO_SERVE_PORT": ("port", int),
    "AVEMO_SERVE_WORKERS": ("workers", int),
    "AVEMO_SERVE_MAX_UPLOAD_MB": ("max_upload_mb", float),
    "AVEMO_SERVE_MAX_DURATION": ("max_duration_s", float),
    "AVEMO_SERVE_JOB_TIMEOUT": ("job_timeout_s", float),
    "AVEMO_SERVE_WAIT": ("wait_s", float),
    "AVEMO_SERVE_MAX_QUEUED": ("max_queued", int),
    "AVEMO_SERVE_LIVE_SESSIONS": ("live_sessions", int),
    "AVEMO_SERVE_LIVE_MAX": ("live_max_s", float),
    "AVEMO_SERVE_URLS": ("urls", str),
}


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Settings from the environment (defaults where a variable is unset); bad values raise
    :class:`AvemoError` naming the variable."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {"data_dir": default_data_dir(env), "workers": default_workers()}
    for var, (name, kind) in _ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        try:
            values[name] = kind(raw)
        except ValueError:
            raise AvemoError(f"{var}={raw!r}: expected {'an integer' if kind is int else 'a number'}") from None
    key = env.get("AVEMO_API_KEY")
    values["api_key"] = key if key else None
    cors = env.get("AVEMO_SERVE_CORS", "")
    values["cors_origins"] = tuple(o.strip() for o in cors.split(",") if o.strip())
    return Settings(**values).check()
