"""The output folder of ``avemo batch``: one Parquet dataset of timelines, partitioned by file, and a status table.

Layout of ``OUT/``::

    timelines/file=<name>/part-0.parquet   one input's EmotionTimeline rows (hive partitioning: a reader
                                           sees a ``file`` column); its metadata (models, settings, media)
                                           rides in the Parquet schema
    status/<name>.json                     one input's outcome: file, path, status, error, seconds, ... and
                                           the stamp (size, mtime, settings, models) a rerun compares
    status.parquet                         every input's outcome in one table (written at the end of a run)

A partition is written under a hidden name and renamed into place, then its status record is written,
so an interrupted run leaves no half-written partition that a reader would see, and a rerun redoes it.
Names are the input stems (a short path hash where stems collide), URI-escaped in folder names as
pyarrow's hive partitioning expects.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from avemo.errors import AvemoError

#: the columns of the status table, in order
STATUS_COLUMNS = ("file", "path", "status", "error", "seconds", "windows", "worker", "finished")
TIMELINES = "timelines"
STATUS_DIR = "status"
STATUS_TABLE = "status.parquet"


def _escaped(name: str) -> str:
    return quote(name, safe="")


def partition_dir(out_dir: Path, name: str) -> Path:
    """The folder of one input's timeline rows."""
    return Path(out_dir) / TIMELINES / f"file={_escaped(name)}"


def marker_path(out_dir: Path, name: str) -> Path:
    """The status record of one input."""
    return Path(out_dir) / STATUS_DIR / f"{_escaped(name)}.json"


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_partition(out_dir: Path, name: str, timeline: pd.DataFrame) -> Path:
    """Write one input's timeline as its partition (replacing an older one); returns the partition folder.

    The probability columns stay float64, ``label`` is a string column and ``track`` (``--all-faces``) an
    integer one whatever the rows hold, so every partition has the same schema. ``attrs`` (source,
    settings, models, media) go into the Parquet metadata.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(timeline).reset_index(drop=True)
    frame["label"] = frame["label"].astype("string")
    if "track" in frame.columns:
        frame["track"] = frame["track"].astype("Int64")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    attrs = {k: v for k, v in dict(getattr(timeline, "attrs", {})).items() if k != "face_boxes"}
    meta = dict(table.schema.metadata or {})
    meta[b"avemo"] = json.dumps(attrs, default=str).encode()
    table = table.replace_schema_metadata(meta)
    final = partition_dir(out_dir, name)
    staging = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        pq.write_table(table, staging / "part-0.parquet")
        remove_partition(out_dir, name)
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def remove_partition(out_dir: Path, name: str) -> None:
    shutil.rmtree(partition_dir(out_dir, name), ignore_errors=True)


def attempt_path(out_dir: Path, name: str) -> Path:
    """Counts the attempts at one input that have not finished (a worker that died on it leaves it behind)."""
    return Path(out_dir) / STATUS_DIR / f".{_escaped(name)}.attempts"


def start_attempt(out_dir: Path, name: str) -> int:
    """Count one more attempt at ``name``; returns how many earlier attempts died unfinished."""
    path = attempt_path(out_dir, name)
    try:
        earlier = int(path.read_text() or 0)
    except (OSError, ValueError):
        earlier = 0
    _atomic_text(path, str(earlier + 1))
    return earlier


def write_marker(out_dir: Path, record: dict[str, Any], stamp: dict[str, Any]) -> None:
    """Record one input's outcome (``record``: the status columns) and the stamp it was made under."""
    _atomic_text(marker_path(out_dir, record["file"]), json.dumps({**record, "stamp": stamp}, indent=2) + "\n")
    attempt_path(out_dir, record["file"]).unlink(missing_ok=True)


def read_marker(out_dir: Path, name: str) -> dict[str, Any] | None:
    """One input's status record (None when there is none or it cannot be read)."""
    path = marker_path(out_dir, name)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_finished(out_dir: Path, name: str, stamp: dict[str, Any]) -> bool:
    """Whether the input was analysed under the same stamp and its partition is there (a rerun skips it)."""
    record = read_marker(out_dir, name)
    return (record is not None and record.get("status") == "done" and record.get("stamp") == stamp
            and (partition_dir(out_dir, name) / "part-0.parquet").is_file())


def status_record(name: str, path: Path, status: str, error: str = "", seconds: float = 0.0,
                  windows: int = 0) -> dict[str, Any]:
    """One row of the status table, stamped with the worker (host:pid) and the time."""
    return {"file": name, "path": str(path), "status": status, "error": error, "seconds": round(float(seconds), 3),
            "windows": int(windows), "worker": f"{socket.gethostname()}:{os.getpid()}",
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_status_table(out_dir: Path) -> pd.DataFrame:
    """Gather every status record under ``out_dir`` into ``status.parquet`` (and return it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = []
    folder = Path(out_dir) / STATUS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        records.append({k: rec.get(k) for k in STATUS_COLUMNS})
    table = pd.DataFrame.from_records(records, columns=list(STATUS_COLUMNS))
    table = table.astype({"seconds": "float64", "windows": "int64"})
    staging = Path(out_dir) / f".{STATUS_TABLE}.{uuid.uuid4().hex[:8]}.tmp"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), staging)
    staging.replace(Path(out_dir) / STATUS_TABLE)
    return table


def read_status(out_dir: str | Path) -> pd.DataFrame:
    """The status table of a batch folder (``file, path, status, error, seconds, windows, worker, finished``)."""
    path = Path(out_dir) / STATUS_TABLE
    if not path.is_file():
        raise AvemoError(f"{out_dir}: no {STATUS_TABLE} here (not an `avemo batch` output folder?)")
    return pd.read_parquet(path)


def read_timelines(out_dir: str | Path, files: Iterable[str] | None = None) -> pd.DataFrame:
    """The timeline rows of a batch folder as one DataFrame with a ``file`` column (only ``files`` if given)."""
    import pyarrow.dataset as ds

    root = Path(out_dir) / TIMELINES
    if not root.is_dir():
        raise AvemoError(f"{out_dir}: no {TIMELINES}/ dataset here (not an `avemo batch` output folder?)")
    dataset = ds.dataset(root, format="parquet", partitioning="hive")
    wanted = None if files is None else ds.field("file").isin(list(files))
    frame = dataset.to_table(filter=wanted).to_pandas()
    frame["file"] = frame["file"].astype(str)
    return frame


def load_timeline(out_dir: str | Path, name: str) -> Any:
    """One input's :class:`~avemo.inference.result.EmotionTimeline`, its metadata restored from the Parquet file."""
    import pyarrow.parquet as pq

    from avemo.inference.result import EmotionTimeline

    path = partition_dir(Path(out_dir), name) / "part-0.parquet"
    if not path.is_file():
        raise AvemoError(f"{out_dir}: no timeline for {name!r}")
    table = pq.read_table(path)
    out = EmotionTimeline(table.to_pandas())
    raw = (table.schema.metadata or {}).get(b"avemo")
    if raw:
        out.attrs.update(json.loads(raw))
    return out
