"""Timeline plots drawn by a helper process, so that the command line does not wait for matplotlib's import.

``avemo analyze`` starts a :class:`PlotWorker` first thing: the helper imports matplotlib and pandas (about
0.7 s of CPU) on the second core while the command starts up on one (its own imports, the model sessions), so
the plot after the analysis costs only its drawing. Each timeline goes to the helper as a pickle over its stdin
and the helper answers with one JSON line. Whatever goes wrong with the helper (it did not start, died, or
answered an error), :meth:`PlotWorker.plot` draws in this process instead, so a plot is never lost and a real
plotting error surfaces as it would without the helper.

    python -m avemo.inference.plot_worker   # the helper's side (started by PlotWorker, not by hand)
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import select
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_HEADER = struct.Struct("<Q")  # payload length
TIMEOUT = 300.0  #: seconds to wait for one plot before drawing it here instead (a 2 h timeline takes a few)


class PlotWorker:
    """A helper process drawing :meth:`EmotionTimeline.plot` PNGs; use as a context manager."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        if not sys.executable:  # an embedded interpreter: plots are drawn in this process
            return
        # the helper imports this very avemo, wherever it was imported from
        here = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", "avemo.inference.plot_worker"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError as exc:  # no helper: plots are drawn in this process
            log.debug("plot helper not started: %s", exc)

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def plot(self, timeline: Any, path: str | Path) -> Path:
        """Write ``timeline``'s plot to ``path`` (by the helper, else here) and return the path."""
        return self.submit(timeline, path)()

    def submit(self, timeline: Any, path: str | Path) -> Callable[[], Path]:
        """Send ``timeline``'s plot to the helper and return at once a function that waits for it (drawing it
        here if the helper fails) and returns ``path``, so that the caller works on while the helper draws
        (``avemo analyze`` on a folder analyses the next file). Wait for one plot before submitting the next."""
        path = Path(path)
        proc = self._proc
        if proc is None or proc.poll() is not None or proc.stdin is None or proc.stdout is None:
            return lambda: self._here(timeline, path)
        try:
            payload = pickle.dumps((timeline, str(path)), protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.write(_HEADER.pack(len(payload)) + payload)
            proc.stdin.flush()
        except (OSError, ValueError, pickle.PicklingError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            return lambda: self._here(timeline, path, error)

        def wait() -> Path:
            try:
                reply = json.loads(self._answer(proc) or b'{"error": "the plot helper exited or hung"}')
            except (OSError, ValueError) as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            return path if reply.get("ok") else self._here(timeline, path, str(reply.get("error", reply)))
        return wait

    def _here(self, timeline: Any, path: Path, error: str | None = None) -> Path:
        """Draw in this process (the helper failed with ``error``, which ends it, or never ran)."""
        if error is not None:
            log.debug("plot helper failed on %s (%s); drawing here", path, error)
            self.close(wait=0.0)
        timeline.plot(path)
        return path

    def _answer(self, proc: subprocess.Popen[bytes]) -> bytes:
        """The helper's answer line; empty if it does not come within :data:`TIMEOUT` seconds (POSIX)."""
        assert proc.stdout is not None
        if os.name == "posix":
            ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
            if not ready:
                return b""
        return proc.stdout.readline()

    def close(self, wait: float = 5.0) -> None:
        """End the helper (it exits when its stdin closes; killed after ``wait`` seconds)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=wait)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> PlotWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    """The helper: import what plotting needs, then draw each timeline sent on stdin until it closes."""
    import signal

    # Ctrl-C in a terminal reaches the whole process group: the caller decides (it awaits the plot under way,
    # then closes stdin), so the helper neither dies mid-plot nor prints a traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import matplotlib.backends.backend_agg  # noqa: F401  (the imports are the point: paid before any request)
    import matplotlib.figure  # noqa: F401

    from avemo.inference.result import EmotionTimeline  # noqa: F401  (unpickling needs the class)

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while header := stdin.read(_HEADER.size):
        if len(header) < _HEADER.size:
            return
        timeline, path = pickle.loads(stdin.read(_HEADER.unpack(header)[0]))
        try:
            timeline.plot(path)
            reply: dict[str, Any] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - reported to the caller, which draws the plot itself
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # no interpreter teardown (0.2 s with matplotlib and pandas loaded, which the caller would wait for)
