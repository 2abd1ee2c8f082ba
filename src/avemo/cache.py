"""A content-addressed feature cache: compute features of a file once per (content, settings).

An entry's key is the SHA-256 of the file's bytes (streamed; memoised in memory per path, size,
mtime, ctime and inode, so an unchanged file is hashed once per process) and the SHA-256 of the
canonical JSON of ``{namespace, settings, FEATURE_VERSION}``. Entries are ``.npz`` files under
``<root>/<namespace>/<settings-hash>/<content-hash>.npz``, written to a temporary file and moved
into place with :func:`os.replace`, so a reader never sees half an entry. A changed setting or a
changed file is a different key (never a stale hit); an unreadable entry is recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avemo.config import cache_root
from avemo.errors import MediaError

# Bump when feature code changes in a way that makes old entries wrong.
FEATURE_VERSION = 1

_ARRAY_KEY = "__array__"  # the key under which a bare ndarray result is stored
_CHUNK = 1 << 20

log = logging.getLogger(__name__)

_hash_memo: dict[tuple[str, int, int, int, int], str] = {}
_hash_lock = threading.Lock()


def content_hash(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes, read in 1 MiB chunks; memoised per (path, size,
    mtime_ns, ctime_ns, inode) for this process."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(p, "file not found") from None
    except OSError as exc:
        raise MediaError(p, f"cannot read the file: {exc.strerror or exc}") from None
    if not p.is_file():
        raise MediaError(p, "not a regular file")
    # ctime too: it changes on any write or utime, so even a same-size rewrite with its mtime
    # restored is hashed again
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    with _hash_lock:
        hit = _hash_memo.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except OSError as exc:
        raise MediaError(p, f"cannot read the file: {exc.strerror or exc}") from None
    digest = h.hexdigest()
    with _hash_lock:
        _hash_memo[key] = digest
    return digest


def _jsonable(value: Any) -> Any:
    """Settings -> plain JSON values, deterministically (raises TypeError for anything else)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return repr(value)
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _jsonable(value.tolist()), "dtype": str(value.dtype)}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__name__, **_jsonable(dataclasses.asdict(value))}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"settings keys must be strings, got {k!r}")
            out[k] = _jsonable(v)
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    raise TypeError(f"cannot use {type(value).__name__} in cache settings: {value!r}")


def settings_hash(namespace: str, settings: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the namespace, the settings and :data:`FEATURE_VERSION`."""
    doc = {"namespace": namespace, "settings": _jsonable(dict(settings)), "version": FEATURE_VERSION}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FeatureCache:
    """Features of files, computed once and kept as ``.npz``.

    >>> cache = FeatureCache()
    >>> feats = cache.get_or_compute(path, "logmel", cfg.to_dict(), lambda: {"mel": log_mel(wave)})

    ``compute`` returns a dict of arrays (given back as a dict) or one array (given back as an
    array). ``hits``, ``misses`` and ``recomputed`` (corrupt entries replaced) count calls.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root() / "features"
        self.hits = 0
        self.misses = 0
        self.recomputed = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    def entry_path(self, path: str | os.PathLike[str], namespace: str, settings: Mapping[str, Any]) -> Path:
        """Where the entry for this file, namespace and settings lives (whether or not it exists)."""
        if not _NAMESPACE.match(namespace):
            raise ValueError(f"namespace must be a plain name (letters, digits, _ . -), got {namespace!r}")
        return self.root / namespace / settings_hash(namespace, settings)[:32] / f"{content_hash(path)}.npz"

    def get_or_compute(
        self,
        path: str | os.PathLike[str],
        namespace: str,
        settings: Mapping[str, Any],
        compute: Callable[[], Mapping[str, np.ndarray] | np.ndarray],
    ) -> dict[str, np.ndarray] | np.ndarray:
        entry = self.entry_path(path, namespace, settings)
        if entry.is_file():
            try:
                result = _load(entry)
            except Exception as exc:  # truncated, not a zip, pickled objects, ...
                log.warning("feature cache entry %s is unreadable (%s); recomputing", entry, exc)
                with self._lock:
                    self.recomputed += 1
                _unlink(entry)
            else:
                with self._lock:
                    self.hits += 1
                return result
        with self._lock:
            self.misses += 1
        value = compute()
        arrays = _as_arrays(value)
        try:
            _save_atomic(entry, arrays)
        except OSError as exc:  # a full or read-only disk costs speed, not the result
            log.warning("cannot write feature cache entry %s: %s", entry, exc)
        return _loaded_form(arrays)

    def clear(self, namespace: str | None = None) -> None:
        """Delete every entry (or one namespace's) and reset the counters."""
        target = self.root if namespace is None else self.root / namespace
        if target.exists():
            shutil.rmtree(target)
        with self._lock:
            self.hits = self.misses = self.recomputed = 0

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "recomputed": self.recomputed}


def _as_arrays(value: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    if isinstance(value, np.ndarray):
        arrays = {_ARRAY_KEY: value}
    elif isinstance(value, Mapping):
        arrays = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k or k == _ARRAY_KEY:
                raise TypeError(f"feature names must be non-empty strings, got {k!r}")
            arrays[k] = np.asarray(v)
    else:
        raise TypeError(f"compute() must return an ndarray or a dict of ndarrays, got {type(value).__name__}")
    for k, a in arrays.items():
        if a.dtype.hasobject:
            raise TypeError(f"feature {k!r} has object dtype; only numeric arrays can be cached")
    return arrays


def _loaded_form(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray] | np.ndarray:
    if set(arrays) == {_ARRAY_KEY}:
        return arrays[_ARRAY_KEY]
    return dict(arrays)


def _load(entry: Path) -> dict[str, np.ndarray] | np.ndarray:
    try:
        with np.load(entry, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"not a valid npz: {exc}") from exc
    if not arrays:
        raise ValueError("empty entry")
    return _loaded_form(arrays)


def _save_atomic(entry: Path, arrays: dict[str, np.ndarray]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{entry.stem[:16]}-", suffix=".tmp", dir=entry.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, entry)
    except BaseException:
        _unlink(Path(tmp))
        raise


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass
