"""Third-party chatter kept off the terminal: what native libraries (MediaPipe, TensorFlow Lite, absl) print
on the process's standard error while they start up goes to a log file instead.

Their C++ logging ignores Python's logging and the usual environment variables, so :func:`native_stderr`
redirects file descriptor 2 around the calls that print (creating a landmarker, its first frames). Set
``AVEMO_VERBOSE=1`` (or ``avemo --verbose``) to see it on the terminal instead. The log is
``$AVEMO_CACHE/logs/native.log``.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from avemo.config import cache_root

_LOCK = threading.Lock()
_DEPTH = 0


def native_log_path() -> Path:
    return cache_root() / "logs" / "native.log"


def verbose() -> bool:
    return os.environ.get("AVEMO_VERBOSE", "") not in ("", "0")


@contextmanager
def native_stderr() -> Iterator[None]:
    """Inside the block, what is written to file descriptor 2 goes to :func:`native_log_path` (nested and
    concurrent uses share one redirection)."""
    global _DEPTH
    if verbose():
        yield
        return
    with _LOCK:
        if _DEPTH == 0:
            try:
                path = native_log_path()
                path.parent.mkdir(parents=True, exist_ok=True)
                log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError:  # no writable cache: leave stderr alone
                log_fd = -1
            sys.stderr.flush()
            _redirect.saved = os.dup(2) if log_fd >= 0 else -1
            if log_fd >= 0:
                os.dup2(log_fd, 2)
                os.close(log_fd)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0 and _redirect.saved >= 0:
                sys.stderr.flush()
                os.dup2(_redirect.saved, 2)
                os.close(_redirect.saved)


class _redirect:  # noqa: N801 - a namespace for the saved descriptor
    saved = -1
