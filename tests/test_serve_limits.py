"""``avemo serve`` with an API key, CORS for one origin and a per-job timeout shorter than any analysis:
every route but /healthz needs the key (header, bearer, the page's cookie, the WebSocket too), and a
job past its timeout is stopped and failed with the reason while the server goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from avemo.serve.harness import ServerProcess

KEY = "test-key-0123456789"
ORIGIN = "http://allowed.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data: Path) -> ServerProcess:
    root = tmp_path_factory.mktemp("serve-limits")
    srv = ServerProcess(root / "data", workers=1, env={"AVEMO_API_KEY": KEY, "AVEMO_SERVE_JOB_TIMEOUT": "0.2",
                                                        "AVEMO_SERVE_CORS": ORIGIN})
    srv.start()
    yield srv
    srv.stop()


def test_api_key_required_everywhere_but_healthz(server: ServerProcess) -> None:
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    for path in ("/", "/static/app.js", "/openapi.json", "/v1/models", "/v1/jobs",
                 "/v1/jobs/0123456789abcdef0123456789abcdef"):
        r = requests.get(server.url + path, timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", path
        assert requests.get(server.url + path, headers={"X-API-Key": "wrong-key-000"}, timeout=10).status_code == 401
    assert requests.post(f"{server.url}/v1/analyze", data=b"x", timeout=10).status_code == 401
    assert requests.get(f"{server.url}/v1/jobs", headers={"X-API-Key": KEY}, timeout=10).status_code == 200
    assert requests.get(f"{server.url}/v1/jobs", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).ok


def test_page_key_becomes_a_cookie(server: ServerProcess) -> None:
    session = requests.Session()
    r = session.get(f"{server.url}/", params={"key": KEY}, allow_redirects=False, timeout=10)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert session.get(f"{server.url}/", timeout=10).status_code == 200  # the key is out of the URL
    assert session.get(f"{server.url}/static/app.js", timeout=10).status_code == 200
    assert session.get(f"{server.url}/v1/jobs", timeout=10).status_code == 200
    assert requests.get(f"{server.url}/", params={"key": "wrong-key-000"}, timeout=10).status_code == 401


def test_websocket_needs_the_key(server: ServerProcess) -> None:
    from websockets.sync.client import connect

    url = server.url.replace("http://", "ws://") + "/v1/live"
    with connect(url, open_timeout=30) as ws:
        msg = json.loads(ws.recv(timeout=30))
        assert msg["type"] == "error" and msg["code"] == "unauthorized"
    with connect(url, open_timeout=30, additional_headers={"X-API-Key": KEY}) as ws:
        ws.send(json.dumps({"type": "start"}))
        assert json.loads(ws.recv(timeout=60))["type"] in ("loading", "ready")


def test_cors_only_for_the_allowed_origin(server: ServerProcess) -> None:
    headers = {"X-API-Key": KEY}
    ok = requests.get(f"{server.url}/v1/jobs", headers={**headers, "Origin": ORIGIN}, timeout=10)
    assert ok.headers.get("access-control-allow-origin") == ORIGIN
    other = requests.get(f"{server.url}/v1/jobs", headers={**headers, "Origin": "http://other.example"}, timeout=10)
    assert "access-control-allow-origin" not in {k.lower() for k in other.headers}
    preflight = requests.options(f"{server.url}/v1/analyze", timeout=10, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"})
    assert preflight.status_code == 200 and preflight.headers.get("access-control-allow-origin") == ORIGIN


def test_job_timeout_stops_the_job_and_the_server_goes_on(server: ServerProcess, clips: dict[str, Path]) -> None:
    headers = {"X-API-Key": KEY}
    r = requests.post(f"{server.url}/v1/analyze", params={"wait": "true"}, headers=headers, timeout=120,
                      files={"file": (clips["ravdess_mp4"].name, clips["ravdess_mp4"].read_bytes())})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "failed" and "job timeout (0.2 s)" in job["error"]
    # its process was killed; a fresh one loads the models
    deadline = time.monotonic() + 120
    while requests.get(f"{server.url}/healthz", timeout=10).json()["ready"] < 1:
        assert time.monotonic() < deadline, "no worker came back after the timeout"
        time.sleep(0.2)
    listed = requests.get(f"{server.url}/v1/jobs", headers=headers, timeout=10).json()
    assert listed["counts"]["failed"] >= 1 and listed["counts"]["running"] == 0


def test_by_default_a_url_on_a_local_or_private_address_is_not_fetched(server: ServerProcess, http_site) -> None:
    """The default ``urls=public``: a job's URL on this machine (a real local site, by address and by name) is
    refused before any request reaches it, so the service cannot be made to read its own network."""
    base, site, served = http_site
    (site / "clip.flv").write_bytes(b"FLV" + b"\0" * 100)
    port = base.rsplit(":", 1)[1]
    headers = {"X-API-Key": KEY}
    for url in (f"{base}/clip.flv", f"http://localhost:{port}/clip.flv", f"http://127.0.0.1:{server.port}/healthz"):
        r = requests.post(f"{server.url}/v1/analyze", params={"url": url}, headers=headers, timeout=30)
        assert r.status_code == 422 and r.json()["error"]["code"] == "download_failed", r.text
        assert "not a public address" in r.json()["error"]["message"]
    assert not served
