"""The analysis worker pool: a bounded number of worker processes, each loading the models once.

One thread per worker (a *slot*) takes job ids from one queue, hands the job to its process over a
pipe and records progress and the outcome in the :class:`~avemo.serve.store.JobStore`::

    POST /v1/analyze ─► store (queued) ─► queue ─► slot thread ─pipe─► worker process (JobEngine)
                                                       ▲                   │ progress, done, failed
                                                       └── store ◄─────────┘

Processes rather than threads, so that a job past its timeout (or deleted while running) is
stopped for real: its process is killed and a fresh one loads the models for the next job. A
worker that dies takes only its current job with it (failed, with the exit code). Workers die
with the server (parent-death signal, and a watchdog on the parent's pid).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from avemo.serve.settings import Settings
from avemo.serve.store import JobStore

log = logging.getLogger(__name__)

_LOAD_TIMEOUT_S = 600.0  # the first start builds the Whisper encoder graph from its wheels (cached after)
_POLL_S = 0.1


class WorkerPool:
    """``settings.workers`` slots fed from one FIFO queue of job ids."""

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._queue: queue.Queue[str] = queue.Queue()
        self._stopping = threading.Event()
        self._ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        self._slots = [_Slot(i, self) for i in range(settings.workers)]
        self.model_names: dict[str, str] | None = None

    def start(self) -> None:
        for slot in self._slots:
            slot.start()

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def cancel(self, job_id: str, timeout: float = 10.0) -> bool:
        """Stop ``job_id`` if a worker is running it (its process is killed); True when it was running."""
        for slot in self._slots:
            if slot.job_id == job_id:
                return slot.cancel(job_id, timeout)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs and end the workers; jobs still running are failed with the reason."""
        self._stopping.set()
        for slot in self._slots:
            slot.join(timeout)

    def status(self) -> dict[str, Any]:
        return {"workers": len(self._slots), "ready": sum(s.ready for s in self._slots),
                "busy": sum(s.job_id is not None for s in self._slots), "queued": self.queued,
                "models": self.model_names}


class _Slot(threading.Thread):
    """Runs one worker process and its jobs, one at a time."""

    def __init__(self, index: int, pool: WorkerPool) -> None:
        super().__init__(name=f"avemo-serve-slot-{index}", daemon=True)
        self.pool = pool
        self.proc: Any = None
        self.conn: Any = None
        self.ready = False
        self.load_error: str | None = None  #: why the last start failed (retried when a job comes)
        self.job_id: str | None = None
        self._cancel: str | None = None
        self._cancelled = threading.Event()

    # ---- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.pool._stopping.is_set():
                if not self.ready and self.load_error is None:  # (re)start the worker before a job needs it
                    self.load_error = self._spawn()
                try:
                    job_id = self.pool._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    self._serve(job_id)
                except Exception:  # a slot must not die: log, fail the job, go on
                    log.exception("worker slot failed on job %s", job_id)
                    self.pool.store.fail(job_id, "internal error in the job runner")
                    self._kill()
                finally:
                    self.job_id = None
        finally:
            self._kill()

    def _spawn(self) -> str | None:
        """Start the worker process and wait until its models are loaded; the error text when that fails."""
        self._kill()
        settings = self.pool.settings
        parent, child = self.pool._ctx.Pipe()
        config = {"preview_side": settings.preview_side, **dict(settings.analyzer)}
        self.proc = self.pool._ctx.Process(target=worker_main, args=(child, config, os.getpid()),
                                           name="avemo-serve-worker", daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        deadline = time.monotonic() + _LOAD_TIMEOUT_S
        while time.monotonic() < deadline and not self.pool._stopping.is_set():
            if self.conn.poll(_POLL_S):
                try:
                    msg = self.conn.recv()
                except (EOFError, OSError):
                    break
                if msg[0] == "ready":
                    self.ready = True
                    self.pool.model_names = msg[1]
                    return None
                self._kill()
                return str(msg[1])
            if not self.proc.is_alive():
                break
        code = self.proc.exitcode if self.proc is not None else None
        self._kill()
        return f"the worker process ended while loading the models (exit code {code})"

    def _serve(self, job_id: str) -> None:
        store, settings = self.pool.store, self.pool.settings
        job = store.get(job_id)
        if job is None or job.status != "queued":
            return  # deleted (or already handled) while it waited
        if not self.ready:
            self.load_error = self._spawn()
            if self.load_error is not None:
                store.fail(job_id, f"the analysis models could not be loaded: {self.load_error}")
                return
        if not store.claim(job_id):
            return
        self.job_id, self._cancel = job_id, None
        self._cancelled.clear()
        folder = store.job_dir(job_id)
        deadline = time.monotonic() + settings.job_timeout_s
        outcome: tuple[str, Any] | None = None
        try:
            self.conn.send(("job", job_id, str(store.upload_path(job_id)), str(folder), job.filename, job.media,
                            job.options))
        except (OSError, ValueError):  # the worker died after it said ready
            code = self.proc.exitcode if self.proc is not None else None
            self._kill()
            outcome = ("failed", f"the worker process died before the analysis started (exit code {code})")
        while outcome is None:
            if self._cancel == job_id:
                self._kill()
                outcome = ("cancelled", None)
                break
            if self.pool._stopping.is_set():
                self._kill()
                outcome = ("failed", "the server was stopped while this job was running; upload the file again")
                break
            if time.monotonic() > deadline:
                self._kill()
                outcome = ("failed", f"the analysis took longer than the job timeout ({settings.job_timeout_s:g} s) "
                                     "and was stopped")
                break
            try:
                if not self.conn.poll(_POLL_S):
                    if not self.proc.is_alive():
                        raise EOFError
                    continue
                msg = self.conn.recv()
            except (EOFError, OSError):
                code = self.proc.exitcode if self.proc is not None else None
                self._kill()
                outcome = ("failed", f"the worker process died while analysing (exit code {code})")
                break
            kind = msg[0]
            if kind == "progress":
                store.set_progress(job_id, msg[2])
            elif kind == "done":
                outcome = ("done", (msg[2], msg[3]))
            elif kind == "failed":
                outcome = ("failed", msg[2])
        status, detail = outcome
        if status == "done":
            kept = store.finish(job_id, *detail)
        elif status == "failed":
            kept = store.fail(job_id, detail)
        else:
            kept = False
            self._cancelled.set()
        if not kept and store.get(job_id) is None:  # deleted while running: leave nothing behind
            shutil.rmtree(folder, ignore_errors=True)

    # ---- control ---------------------------------------------------------------------------------
    def cancel(self, job_id: str, timeout: float) -> bool:
        if self.job_id != job_id:
            return False
        self._cancel = job_id
        return self._cancelled.wait(timeout)

    def _kill(self) -> None:
        self.ready = False
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(5.0)
            self.proc = None


# ---- the worker process ----------------------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    """End this process when the server ends, however it ends (even killed)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="avemo-serve-parent-watch", daemon=True).start()


def worker_main(conn: Any, config: dict[str, Any], parent_pid: int) -> None:
    """A worker process: load the models, say ``ready``, then run the jobs it is sent."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    import matplotlib

    matplotlib.use("Agg")
    from avemo.errors import AvemoError, MediaError

    try:
        from avemo.serve.engine import JobEngine

        engine = JobEngine(**config)
        engine.warm_up()
    except Exception as exc:  # told to the server, which fails the job with it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", engine.model_names))
    lock = threading.Lock()

    def send(msg: tuple) -> None:
        with lock:
            conn.send(msg)

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] != "job":
            return
        _, job_id, media, folder, name, info, options = msg
        last = [0.0]

        def progress(p: float, job_id: str = job_id, last: list[float] = last) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.25 or p >= 1.0:
                last[0] = now
                send(("progress", job_id, float(p)))

        try:
            summary, files = engine.run(Path(media), Path(folder), name, info, progress, **options)
            send(("done", job_id, summary, files))
        except MediaError as exc:
            send(("failed", job_id, f"{name}: {exc.problem}"))
        except AvemoError as exc:
            send(("failed", job_id, str(exc).replace(media, name).replace(folder, "")))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            send(("failed", job_id, f"internal error: {type(exc).__name__}: {exc}".replace(folder, "")))
