"""``avemo serve``: the HTTP service and its browser page.

Data flow::

    upload ─ uploads (stream to a generated name, size bound) ─ engine.check_media (decode) ─ store (SQLite)
          ─ workers (processes, models loaded once) ─ engine.JobEngine (Analyzer) ─ job folder ─ API / page
    browser camera + microphone ─ WebSocket (livesocket) ─ engine.LiveFeed (LiveAnalyzer) ─ running labels

Modules: ``settings`` (environment and options), ``store`` (jobs in SQLite, job folders), ``uploads``
(receiving a request body), ``engine`` (the only link to the analysis code), ``workers`` (the process
pool), ``livesocket`` (the ``/v1/live`` protocol), ``app`` (FastAPI routes, API key, CORS, errors),
``harness`` (a real server in a subprocess and headless Chromium, for tests and benchmarks),
``static/`` (the page: plain HTML, CSS and JavaScript).
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):  # noqa: ANN002, ANN003 - see avemo.serve.app.create_app
    """The FastAPI application (imported on use: FastAPI loads only when serving)."""
    from avemo.serve.app import create_app as _create_app

    return _create_app(*args, **kwargs)
