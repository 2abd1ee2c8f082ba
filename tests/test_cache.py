"""avemo.cache.FeatureCache: hits, misses on changed settings or content, corrupt entries, clear."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from avemo.cache import FEATURE_VERSION, FeatureCache, content_hash, settings_hash
from avemo.errors import MediaError


class Counter:
    """A compute function that counts its calls and returns fresh arrays each time."""

    def __init__(self, as_array: bool = False) -> None:
        self.calls = 0
        self.as_array = as_array

    def __call__(self):
        self.calls += 1
        mel = np.arange(12, dtype=np.float32).reshape(3, 4) * self.calls
        if self.as_array:
            return mel
        return {"mel": mel, "times": np.linspace(0, 1, 4), "n": np.array(7)}


@pytest.fixture
def media_file(tmp_path: Path) -> Path:
    p = tmp_path / "clip.wav"
    p.write_bytes(b"RIFF" + bytes(range(256)) * 40)
    return p


@pytest.fixture
def cache(tmp_path: Path) -> FeatureCache:
    return FeatureCache(tmp_path / "cache")


def test_second_call_is_a_hit_with_equal_arrays(cache, media_file):
    compute = Counter()
    first = cache.get_or_compute(media_file, "logmel", {"n_mels": 64}, compute)
    second = cache.get_or_compute(media_file, "logmel", {"n_mels": 64}, compute)
    assert compute.calls == 1
    assert (cache.hits, cache.misses) == (1, 1)
    assert set(first) == set(second) == {"mel", "times", "n"}
    for k in first:
        np.testing.assert_array_equal(first[k], second[k])
        assert first[k].dtype == second[k].dtype
    # a fresh cache object (another process) finds the same entry on disk
    other = FeatureCache(cache.root)
    again = other.get_or_compute(media_file, "logmel", {"n_mels": 64}, compute)
    assert compute.calls == 1 and other.hits == 1
    np.testing.assert_array_equal(again["mel"], first["mel"])


def test_bare_array_round_trip(cache, media_file):
    compute = Counter(as_array=True)
    a = cache.get_or_compute(media_file, "vad", {}, compute)
    b = cache.get_or_compute(media_file, "vad", {}, compute)
    assert isinstance(b, np.ndarray) and compute.calls == 1
    np.testing.assert_array_equal(a, b)


def test_changed_settings_or_namespace_is_a_miss(cache, media_file):
    compute = Counter()
    cache.get_or_compute(media_file, "logmel", {"n_mels": 64, "hop": 160}, compute)
    cache.get_or_compute(media_file, "logmel", {"hop": 160, "n_mels": 64}, compute)  # order is irrelevant
    assert compute.calls == 1
    out = cache.get_or_compute(media_file, "logmel", {"n_mels": 80, "hop": 160}, compute)
    assert compute.calls == 2 and out["mel"][0, 1] == 2.0  # freshly computed, not the stale entry
    cache.get_or_compute(media_file, "logmel", {"n_mels": 64, "hop": 160.0001}, compute)
    cache.get_or_compute(media_file, "other", {"n_mels": 64, "hop": 160}, compute)
    assert compute.calls == 4
    assert (cache.hits, cache.misses) == (1, 4)


def test_settings_hash_is_canonical_and_versioned():
    @dataclass(frozen=True)
    class Cfg:
        a: int = 1
        b: tuple[float, ...] = (0.5, 2.0)

    h = settings_hash("x", {"cfg": Cfg(), "path": Path("/a/b"), "k": np.float32(0.5), "s": {2, 1}})
    assert h == settings_hash("x", {"s": {1, 2}, "k": 0.5, "path": "/a/b", "cfg": Cfg()})
    assert h != settings_hash("x", {"cfg": Cfg(a=2), "path": "/a/b", "k": 0.5, "s": [1, 2]})
    assert isinstance(FEATURE_VERSION, int)
    with pytest.raises(TypeError):
        settings_hash("x", {"f": object()})


def test_changed_content_is_a_miss_even_with_same_size_and_mtime(cache, media_file):
    compute = Counter()
    cache.get_or_compute(media_file, "logmel", {}, compute)
    st = media_file.stat()
    time.sleep(0.05)  # past the file system's coarse clock tick, so the rewrite gets a new ctime
    data = bytearray(media_file.read_bytes())
    data[100] ^= 0xFF
    media_file.write_bytes(bytes(data))
    os.utime(media_file, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert media_file.stat().st_size == st.st_size
    cache.get_or_compute(media_file, "logmel", {}, compute)
    assert compute.calls == 2
    # the same bytes under another name share the entry
    twin = media_file.with_name("twin.wav")
    twin.write_bytes(bytes(data))
    cache.get_or_compute(twin, "logmel", {}, compute)
    assert compute.calls == 2 and cache.hits == 1


def test_content_hash_streams_and_memoises(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * (1 << 20) + 17))  # several read chunks
    import hashlib

    assert content_hash(big) == hashlib.sha256(big.read_bytes()).hexdigest()
    assert content_hash(big) == content_hash(str(big))
    with pytest.raises(MediaError, match="not found"):
        content_hash(tmp_path / "missing.wav")


@pytest.mark.parametrize("damage", [b"", b"garbage, not a zip", "truncate"])
def test_corrupt_entry_is_recomputed(cache, media_file, damage):
    compute = Counter()
    first = cache.get_or_compute(media_file, "logmel", {"v": 1}, compute)
    entry = cache.entry_path(media_file, "logmel", {"v": 1})
    assert entry.is_file()
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:40])
    else:
        entry.write_bytes(damage)
    out = cache.get_or_compute(media_file, "logmel", {"v": 1}, compute)
    assert compute.calls == 2 and cache.recomputed == 1
    np.testing.assert_array_equal(out["mel"], 2 * first["mel"])
    # the repaired entry is good again
    cache.get_or_compute(media_file, "logmel", {"v": 1}, compute)
    assert compute.calls == 2 and cache.hits == 1


def test_writes_are_atomic_and_leave_no_temporaries(cache, media_file):
    cache.get_or_compute(media_file, "logmel", {}, Counter())
    files = [p for p in cache.root.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".npz"

    def boom():
        raise RuntimeError("feature extraction failed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute(media_file, "other", {}, boom)
    assert [p for p in cache.root.rglob("*") if p.is_file()] == files


def test_bad_results_and_names_are_refused(cache, media_file):
    with pytest.raises(TypeError):
        cache.get_or_compute(media_file, "x", {}, lambda: {"a": np.array([object()])})
    with pytest.raises(TypeError):
        cache.get_or_compute(media_file, "x", {}, lambda: [1, 2, 3])
    with pytest.raises(ValueError):
        cache.get_or_compute(media_file, "../escape", {}, Counter())
    with pytest.raises(MediaError):
        cache.get_or_compute(media_file.with_name("missing.wav"), "x", {}, Counter())


def test_clear_and_default_root(cache, media_file, tmp_path, monkeypatch):
    compute = Counter()
    cache.get_or_compute(media_file, "a", {}, compute)
    cache.get_or_compute(media_file, "b", {}, compute)
    cache.clear("a")
    cache.get_or_compute(media_file, "b", {}, compute)
    assert compute.calls == 2 and cache.stats() == {"hits": 1, "misses": 0, "recomputed": 0}
    cache.get_or_compute(media_file, "a", {}, compute)
    assert compute.calls == 3
    cache.clear()
    assert not cache.root.exists() and cache.stats() == {"hits": 0, "misses": 0, "recomputed": 0}
    cache.get_or_compute(media_file, "a", {}, compute)
    assert compute.calls == 4

    monkeypatch.setenv("AVEMO_CACHE", str(tmp_path / "env-cache"))
    assert FeatureCache().root == tmp_path / "env-cache" / "features"
