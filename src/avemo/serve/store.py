"""Jobs and their results, kept in SQLite (standard library) under the server's data folder.

Layout of ``data_dir``::

    jobs.sqlite3          one row per job (status, progress, times, options, summary, error)
    incoming/             uploads being received (``<random>.part``), moved into a job or deleted
    jobs/<id>/upload      the uploaded file, under this generated name only
    jobs/<id>/...         timeline.csv, timeline.json, summary.json, timeline.png, preview.mp4

A job is ``queued``, then ``running``, then ``done`` or ``failed`` (with ``error``). The database
runs in WAL mode with ``synchronous=FULL``, and a result's files are written before its row says
``done``, so a crash or restart loses nothing finished. :meth:`JobStore.recover`, called at start,
fails the jobs that were running (with the reason) and hands back the queued ones to run again.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STATUSES = ("queued", "running", "done", "failed")
_ID = re.compile(r"^[0-9a-f]{32}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    media TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    summary TEXT,
    files TEXT,
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs (seq);
"""


def new_job_id() -> str:
    """A random job id: 32 hex digits (never derived from anything a client sent)."""
    return uuid.uuid4().hex


def valid_job_id(job_id: str) -> bool:
    return bool(_ID.match(job_id))


@dataclass(frozen=True)
class Job:
    """One job's row. ``media`` is what the upload check found (duration, streams, codecs); ``options`` the
    client's analysis options (:data:`avemo.serve.engine.JOB_OPTIONS`); ``files`` maps result names (``csv``,
    ``json``, ``png``, ``video``) to files in the job folder."""

    id: str
    status: str
    filename: str
    size: int
    media: dict[str, Any]
    created: float
    started: float | None
    finished: float | None
    progress: float
    error: str | None
    summary: dict[str, Any] | None
    files: dict[str, str]
    options: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The job as the API shows it (no server paths)."""
        elapsed = (self.finished - self.started) if self.finished and self.started else None
        return {"id": self.id, "status": self.status, "filename": self.filename, "size": self.size,
                "media": self.media, "options": self.options, "created": self.created, "started": self.started,
                "finished": self.finished,
                "elapsed": None if elapsed is None else round(elapsed, 3),
                "progress": round(self.progress, 4), "error": self.error, "summary": self.summary,
                "downloads": sorted(self.files)}


class JobStore:
    """Thread-safe access to the jobs database and the job folders."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir)
        self.jobs_dir = self.root / "jobs"
        self.incoming = self.root / "incoming"
        for d in (self.root, self.jobs_dir, self.incoming):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "options" not in columns:  # a database from before per-job options
            self._db.execute("ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '{}'")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- paths -----------------------------------------------------------------------------------
    def job_dir(self, job_id: str) -> Path:
        if not valid_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.jobs_dir / job_id

    def upload_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "upload"

    def new_incoming(self) -> Path:
        """A fresh file name for an upload being received."""
        return self.incoming / f"{uuid.uuid4().hex}.part"

    # ---- writing ---------------------------------------------------------------------------------
    def _exec(self, sql: str, args: tuple = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def create(self, received: Path, *, filename: str, size: int, media: dict[str, Any],
               options: dict[str, Any] | None = None) -> Job:
        """A queued job owning ``received`` (moved to ``jobs/<id>/upload``)."""
        job_id = new_job_id()
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True)
        received.replace(folder / "upload")
        now = time.time()
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            self._db.execute("INSERT INTO jobs (id, seq, status, filename, size, media, created, files, options) "
                             "VALUES (?, ?, 'queued', ?, ?, ?, ?, '{}', ?)",
                             (job_id, seq, filename, size, json.dumps(media), now, json.dumps(options or {})))
        return self.get(job_id)  # type: ignore[return-value]

    def claim(self, job_id: str) -> bool:
        """Mark a queued job running; False when it is no longer queued (deleted meanwhile)."""
        return self._exec("UPDATE jobs SET status='running', started=?, progress=0 WHERE id=? AND status='queued'",
                          (time.time(), job_id)) == 1

    def set_progress(self, job_id: str, progress: float) -> None:
        self._exec("UPDATE jobs SET progress=? WHERE id=? AND status='running'",
                   (float(min(max(progress, 0.0), 1.0)), job_id))

    def finish(self, job_id: str, summary: dict[str, Any], files: dict[str, str]) -> bool:
        """Mark a running job done (its files are already written)."""
        return self._exec("UPDATE jobs SET status='done', finished=?, progress=1, summary=?, files=?, error=NULL "
                          "WHERE id=? AND status='running'",
                          (time.time(), json.dumps(summary), json.dumps(files), job_id)) == 1

    def fail(self, job_id: str, reason: str) -> bool:
        """Mark a queued or running job failed, with the reason."""
        return self._exec("UPDATE jobs SET status='failed', finished=?, error=? "
                          "WHERE id=? AND status IN ('queued', 'running')", (time.time(), reason, job_id)) == 1

    def delete(self, job_id: str) -> Job | None:
        """Remove a job's row and folder; returns the job as it was (None when unknown)."""
        job = self.get(job_id)
        if job is None:
            return None
        self._exec("DELETE FROM jobs WHERE id=?", (job_id,))
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        return job

    def recover(self, reason: str = "the server stopped while this job was running; upload the file again"
                ) -> tuple[list[str], list[str]]:
        """After a (re)start: running jobs fail with ``reason``; queued ones are returned, oldest first,
        to be run again. Half-received uploads are deleted. Returns (queued ids, failed ids)."""
        with self._lock:
            failed = [r["id"] for r in self._db.execute("SELECT id FROM jobs WHERE status='running' ORDER BY seq")]
            self._db.execute("UPDATE jobs SET status='failed', finished=?, error=? WHERE status='running'",
                             (time.time(), reason))
            queued = [r["id"] for r in self._db.execute("SELECT id FROM jobs WHERE status='queued' ORDER BY seq")]
        for part in self.incoming.glob("*.part"):
            part.unlink(missing_ok=True)
        return queued, failed

    # ---- reading ---------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        if not valid_job_id(job_id):
            return None
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list(self, *, limit: int = 50, offset: int = 0, status: str | None = None) -> list[Job]:
        """Jobs, newest first."""
        sql, args = "SELECT * FROM jobs", ()
        if status is not None:
            sql, args = sql + " WHERE status=?", (status,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        out = dict.fromkeys(STATUSES, 0)
        out.update({r["status"]: r["n"] for r in rows})
        return out


def _job(row: sqlite3.Row) -> Job:
    return Job(id=row["id"], status=row["status"], filename=row["filename"], size=row["size"],
               media=json.loads(row["media"]), created=row["created"], started=row["started"],
               finished=row["finished"], progress=row["progress"], error=row["error"],
               summary=json.loads(row["summary"]) if row["summary"] else None,
               files=json.loads(row["files"] or "{}"), options=json.loads(row["options"] or "{}"))
