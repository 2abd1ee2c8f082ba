"""Shared fixtures: the real data folder (``AVEMO_DATA``) and the shared clips."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from avemo.config import data_root


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same random state (Python, NumPy and torch's global generators), so no
    outcome depends on the order tests run in or on unseeded draws."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    if "torch" in sys.modules:  # only where torch is in use: the torch-free tests stay torch-free
        sys.modules["torch"].manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # tests never write into the user's cache
    os.environ.setdefault("AVEMO_CACHE", str(tmp_path_factory.mktemp("avemo-cache")))


@pytest.fixture(scope="session")
def data() -> Path:
    """The shared datasets folder; tests that need it are skipped (with the reason) where it is absent."""
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set AVEMO_DATA)")
    return root


@pytest.fixture(scope="session")
def clips(data: Path) -> dict[str, Path]:
    """The shared real clips by short name."""
    c = data / "clips"
    return {
        "ravdess_mp4": c / "ravdess" / "01-01-08-02-01-01-19.mp4",
        "ravdess_wav": c / "ravdess" / "03-01-08-02-01-01-19.wav",
        "ravdess_stereo_wav": c / "ravdess" / "03-01-02-01-01-02-01.wav",
        "cremad_ang": c / "cremad" / "1001_DFA_ANG_XX.flv",
        "cremad_hap": c / "cremad" / "1001_DFA_HAP_XX.flv",
        "cremad_sad": c / "cremad" / "1001_DFA_SAD_XX.flv",
    }


@pytest.fixture
def http_site(tmp_path: Path):
    """A real HTTP server on a free local port serving a fresh folder: ``(base URL, folder, paths requested)``."""
    import functools
    import http.server
    import threading

    site = tmp_path / "site"
    site.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet; the requests are counted instead
            requested.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", site, requested
    httpd.shutdown()
