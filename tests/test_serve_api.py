"""``avemo serve`` over HTTP: a real server (subprocess, one worker process, the shipped models) started
once for the module, real uploads of the shared clips, bad files of every kind, job handling, and the
live WebSocket fed with a real clip's frames and speech."""

from __future__ import annotations

import io
import json
import struct
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from avemo.labels import EMOTIONS
from avemo.serve.harness import ServerProcess

MAX_UPLOAD_MB = 2.0
MAX_DURATION_S = 4.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data: Path) -> ServerProcess:
    root = tmp_path_factory.mktemp("serve-api")
    srv = ServerProcess(root / "data", workers=1, env={"AVEMO_SERVE_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
                                                        "AVEMO_SERVE_MAX_DURATION": str(MAX_DURATION_S),
                                                        "AVEMO_SERVE_URLS": "any"})  # the test site is local
    srv.start()
    yield srv
    srv.stop()


def _post(server: ServerProcess, path: Path | None = None, *, data: bytes | None = None, name: str | None = None,
          wait: bool = False, params: dict | None = None, **kwargs) -> requests.Response:
    content = path.read_bytes() if path is not None else data
    files = {"file": (name or (path.name if path else "upload.bin"), content)}
    return requests.post(f"{server.url}/v1/analyze", files=files,
                         params={**(params or {}), **({"wait": "true"} if wait else {})}, timeout=120, **kwargs)


def _wait_done(server: ServerProcess, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished within {timeout} s")


def _error(r: requests.Response, status: int, code: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]["message"]


def test_health_schema_models_page(server: ServerProcess) -> None:
    health = requests.get(f"{server.url}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["ready"] == 1
    schema = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert {"/v1/analyze", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/models", "/healthz"} <= set(schema["paths"])
    models = requests.get(f"{server.url}/v1/models", timeout=30).json()
    by_name = {b["name"]: b for b in models["bundles"]}
    assert set(models["analysis"]) == {"face", "voice", "fusion"}
    for role, name in models["analysis"].items():
        assert role in by_name[name]["default_for"]
        assert "licen" in by_name[name]["card"].lower()  # the card says what the weights may be used for
    page = requests.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"] and 'id="timeline"' in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert requests.get(server.url + asset, timeout=10).status_code == 200
    assert "http" not in page.text.replace('href="/', "")  # no CDN: every asset is served here
    # CORS is off by default: no cross-origin header, whatever the Origin
    r = requests.get(f"{server.url}/v1/jobs", headers={"Origin": "http://elsewhere.example"}, timeout=10)
    assert "access-control-allow-origin" not in {k.lower() for k in r.headers}


@pytest.mark.parametrize("clip", ["cremad_ang", "ravdess_mp4", "ravdess_wav"])
def test_analyze_shared_clip(server: ServerProcess, clips: dict[str, Path], clip: str) -> None:
    r = _post(server, clips[clip], wait=True)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "done" and job["progress"] == 1.0 and job["error"] is None
    assert str(server.data_dir) not in r.text  # no server path in what a client sees
    media, summary, windows = job["media"], job["summary"], job["result"]["windows"]
    assert job["result"]["metadata"]["source"] == clips[clip].name == summary["source"]
    starts = [w["start"] for w in windows]
    assert starts[0] == 0 and all(b - a == pytest.approx(1.0) for a, b in zip(starts, starts[1:]))
    assert windows[-1]["end"] == pytest.approx(media["duration"], abs=0.05)
    assert summary["dominant"] in EMOTIONS
    for w in windows:
        if w["source"] != "none":
            assert sum(w[f"fused_{e}"] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
            assert w["label"] in EMOTIONS
    if media["has_video"]:  # a real face in every shared clip
        assert summary["face_coverage"] > 0.5
    else:
        assert summary["face_coverage"] == 0 and all(w["face_neutral"] is None for w in windows)
    if media["has_audio"]:  # real speech, found by VAD
        assert summary["speech_coverage"] > 0.5
    else:
        assert summary["speech_coverage"] == 0 and all(w["voice_neutral"] is None for w in windows)

    links = job["links"]
    csv = requests.get(server.url + links["csv"], timeout=30)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert Path(clips[clip].stem).name in csv.headers["content-disposition"]
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == len(windows) and list(frame["label"].fillna("")) == [w["label"] or "" for w in windows]
    doc = requests.get(server.url + links["json"], timeout=30).json()
    assert doc["windows"] == windows and doc["summary"]["dominant"] == summary["dominant"]
    png = requests.get(server.url + links["png"], timeout=30)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    vtt = requests.get(server.url + links["vtt"], timeout=30)
    assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
    assert vtt.text.count(" --> ") == sum(w["label"] is not None for w in windows)

    # a video the browser can play: the original (wav) or an H.264 preview (FLV, MPEG-4 part 2), with ranges
    video = requests.get(server.url + links["video"], timeout=30)
    assert video.status_code == 200
    part = requests.get(server.url + links["video"], headers={"Range": "bytes=0-99"}, timeout=30)
    assert part.status_code == 206 and len(part.content) == 100
    if media["playable"]:
        assert video.content == clips[clip].read_bytes() and video.headers["content-type"] == "audio/wav"
    else:
        assert video.headers["content-type"] == "video/mp4"
        from avemo.media import probe

        preview = Path(server.data_dir.parent / f"preview-{clip}.mp4")
        preview.write_bytes(video.content)
        info = probe(preview)
        assert info.video_codec == "h264" and info.has_audio == media["has_audio"]
        assert info.duration == pytest.approx(media["duration"], abs=0.15)


def test_analyze_a_photo(server: ServerProcess, clips: dict[str, Path], tmp_path: Path) -> None:
    """A photo is analysed as ``avemo analyze photo.jpg`` does it (the same probabilities), and its plot is the
    photo with the face box beside them, drawn from the upload itself."""
    import cv2

    from avemo.inference.analyzer import Analyzer
    from avemo.media import iter_frames

    frame = next(f.image for f in iter_frames(clips["ravdess_mp4"], 1.0) if f.time >= 1.0)  # a real face
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    r = _post(server, photo, wait=True)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "done" and job["media"]["kind"] == "image" and job["media"]["duration"] == 0
    assert (job["media"]["width"], job["media"]["height"]) == frame.shape[1::-1] and "video" not in job["links"]
    assert "vtt" not in job["links"]  # no subtitles for a still picture
    (window,) = job["result"]["windows"]
    assert job["summary"]["face_dominant"] in EMOTIONS and window["voice_neutral"] is None
    here = Analyzer("default").analyze(photo)
    assert [window[f"face_{e}"] for e in EMOTIONS] == pytest.approx(list(here.probabilities("face")[0]), abs=1e-4)
    assert job["result"]["metadata"]["source"] == "face.jpg"
    png = requests.get(server.url + job["links"]["png"], timeout=30)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    plot = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
    assert plot.shape[1] > 2 * plot.shape[0]  # the photo beside its bars, not an empty timeline
    listed = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"]
    assert next(j for j in listed if j["id"] == job["id"])["media"]["kind"] == "image"


def test_a_job_with_text_gets_the_words_and_their_emotions(server: ServerProcess, clips: dict[str, Path]) -> None:
    """``?text=true``: the speech transcribed as ``avemo analyze --text`` does it (the sentence's words, a text
    column group, the transcript in the metadata), ``language`` given or detected; bad options are refused before
    the upload is kept."""
    wav = clips["ravdess_wav"]
    for params in ({"text": "true"}, {"text": "true", "language": "en"}):
        r = requests.post(f"{server.url}/v1/analyze", files={"file": (wav.name, wav.read_bytes())},
                          params={"wait": "true", **params}, timeout=300)
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "done" and job["options"] == {"text": True, **({"language": "en"} if
                                                                                 "language" in params else {})}
        windows = job["result"]["windows"]
        words = " ".join(w["transcript"] or "" for w in windows).lower()
        assert "door" in words and ("kids" in words or "dogs" in words)
        assert job["result"]["metadata"]["transcript"]["language"] == "en"
        for w in windows:
            assert sum(w[f"text_{e}"] for e in EMOTIONS) == pytest.approx(1.0, abs=1e-3)
            assert w["weight_text"] == 0  # no emotion word in the sentence: the fusion leaves the text out
    plain = _post(server, wav, wait=True).json()
    assert plain["options"] == {} and "transcript" not in plain["result"]["windows"][0]
    before = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"]
    for params, needle in (({"language": "en"}, "text=true"), ({"text": "true", "language": "xx"}, "'xx'")):
        r = requests.post(f"{server.url}/v1/analyze", files={"file": (wav.name, wav.read_bytes())}, params=params,
                          timeout=60)
        assert needle in _error(r, 422, "invalid_request")
    assert requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"] == before


def test_a_job_sets_its_own_windows_and_face_rate(server: ServerProcess, clips: dict[str, Path]) -> None:
    """``window``, ``hop`` and ``fps`` per job (the server's defaults otherwise); values out of bounds are refused
    before the upload is kept."""
    wav = clips["ravdess_wav"]
    r = requests.post(f"{server.url}/v1/analyze", files={"file": (wav.name, wav.read_bytes())},
                      params={"wait": "true", "window": "2", "hop": "0.5", "fps": "2"}, timeout=300)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["options"] == {"window": 2.0, "hop": 0.5, "fps": 2.0}
    windows = job["result"]["windows"]
    starts = [w["start"] for w in windows]
    assert starts[:3] == pytest.approx([0.0, 0.5, 1.0]) and all(w["end"] - w["start"] <= 2.0 + 1e-6 for w in windows)
    config = job["result"]["metadata"]["config"]
    assert (config["window"], config["hop"], config["fps"]) == (2.0, 0.5, 2.0)
    plain = _post(server, wav, wait=True).json()["result"]["metadata"]["config"]
    assert (plain["window"], plain["hop"], plain["fps"]) == (3.0, 1.0, 5.0)  # the next job has the defaults again
    before = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"]
    for params, needle in (({"window": "0"}, "window must be within"), ({"fps": "100"}, "fps must be within"),
                           ({"hop": "nan"}, "hop must be within"), ({"start": "5", "end": "2"}, "start < end"),
                           ({"start": "-1"}, "start < end")):
        r = requests.post(f"{server.url}/v1/analyze", files={"file": (wav.name, wav.read_bytes())}, params=params,
                          timeout=60)
        assert needle in _error(r, 422, "invalid_request")
    assert requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"] == before


def test_async_job_with_progress(server: ServerProcess, clips: dict[str, Path]) -> None:
    r = _post(server, clips["cremad_hap"])
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] in ("queued", "running") and r.headers["location"] == f"/v1/jobs/{job['id']}"
    seen, progress = [], []
    while job["status"] not in ("done", "failed"):
        time.sleep(0.05)
        job = requests.get(f"{server.url}/v1/jobs/{job['id']}", timeout=30).json()
        seen.append(job["status"])
        progress.append(job["progress"])
    assert job["status"] == "done" and "result" in job
    assert progress == sorted(progress) and progress[-1] == 1.0
    order = {"queued": 0, "running": 1, "done": 2}
    assert [order[s] for s in seen] == sorted(order[s] for s in seen)
    listed = requests.get(f"{server.url}/v1/jobs", timeout=30).json()
    assert listed["jobs"][0]["id"] == job["id"]  # newest first
    assert "result" not in listed["jobs"][0]  # the list stays light
    done = requests.get(f"{server.url}/v1/jobs", params={"status": "done"}, timeout=30).json()["jobs"]
    assert job["id"] in {j["id"] for j in done} and all(j["status"] == "done" for j in done)


def test_raw_upload_and_client_names_never_reach_the_disk(server: ServerProcess, clips: dict[str, Path]) -> None:
    r = requests.post(f"{server.url}/v1/analyze", data=clips["cremad_sad"].read_bytes(),
                      params={"filename": "../../../../tmp/evil.flv", "wait": "true"},
                      headers={"Content-Type": "application/octet-stream"}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == "evil.flv" and r.json()["status"] == "done"
    r = _post(server, clips["cremad_sad"], name="../../x/../evil2.flv", wait=True)
    assert r.json()["filename"] == "evil2.flv"
    allowed = {"upload", "preview.mp4", "timeline.csv", "timeline.json", "timeline.png", "timeline.vtt", "summary.json"}
    for path in server.data_dir.rglob("*"):
        rel = path.relative_to(server.data_dir)
        assert "evil" not in str(rel)
        if rel.parts[0] == "jobs" and len(rel.parts) == 3:
            assert rel.parts[2] in allowed, rel
    assert not list((server.data_dir / "incoming").iterdir())
    assert not Path("/tmp/evil.flv").exists()


def _multipart_cut(data: bytes) -> tuple[bytes, str]:
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cut.flv\"\r\n"
            b"Content-Type: video/x-flv\r\n\r\n" + data)  # no closing boundary: the upload was cut
    return body, "multipart/form-data; boundary=XyZ"


def _looped_wav(src: Path, seconds: float, out: Path) -> Path:
    import av

    from avemo.media import read_audio

    wave = np.resize(read_audio(src, 16000), int(seconds * 16000)).astype(np.float32)
    with av.open(str(out), "w", format="wav") as c:
        stream = c.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(wave[None], format="flt", layout="mono")
        frame.sample_rate = 16000
        for packet in (*stream.encode(frame), *stream.encode(None)):
            c.mux(packet)
    return out


def test_bad_uploads_answer_clear_4xx(server: ServerProcess, clips: dict[str, Path], tmp_path: Path) -> None:
    import cv2

    flv, mp4, wav = (clips[k].read_bytes() for k in ("cremad_hap", "ravdess_mp4", "ravdess_wav"))
    ok, jpeg = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
    rng = np.random.default_rng(0)
    before = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"]
    cases = [
        ("empty.mp4", b"", 400, "empty_upload"),
        ("cut.flv", flv[: len(flv) // 2], 422, "truncated"),
        ("cut.wav", wav[: len(wav) // 2 + 1], 422, "truncated"),
        ("cut.mp4", mp4[: len(mp4) // 2], 415, "not_media"),  # cut before its index: not openable
        ("notes.mp4", b"hello, this is not a video\n" * 50, 415, "not_media"),
        ("noise.mp4", rng.bytes(20000), 415, "not_media"),
        ("broken.jpg", jpeg.tobytes()[:200], 422, "bad_media"),  # a picture cut short: it does not decode
        ("big.flv", flv + rng.bytes(int(MAX_UPLOAD_MB * 1e6)), 413, "too_large"),
    ]
    for name, content, status, code in cases:
        message = _error(_post(server, data=content, name=name), status, code)
        assert name in message or code in ("empty_upload", "too_large"), message
    # an mp4 with its index in front ("faststart") cut short: it opens, but its data stops
    from avemo.serve.harness import looped_clip

    faststart = looped_clip(3.0, tmp_path / "faststart.mp4", video=clips["ravdess_mp4"], audio=clips["ravdess_wav"])
    cut = faststart.read_bytes()
    assert "faststart.mp4" in _error(_post(server, data=cut[: len(cut) * 6 // 10], name="faststart.mp4"),
                                     422, "truncated")
    long_wav = _looped_wav(clips["ravdess_wav"], MAX_DURATION_S + 3, tmp_path / "long.wav")
    assert "limit is 4.5 s (or analyse a stretch" in _error(_post(server, long_wav), 422, "too_long")
    # the limit counts what is analysed: a stretch within it is taken, one that starts past the end is not
    r = _post(server, long_wav, wait=True, params={"start": 1, "end": 4})
    assert r.status_code == 200 and r.json()["status"] == "done", r.text
    assert r.json()["result"]["windows"][0]["start"] == 1.0
    requests.delete(f"{server.url}/v1/jobs/{r.json()['id']}", timeout=30)
    assert "start 60 s lies beyond" in _error(_post(server, long_wav, params={"start": 60}), 422, "invalid_request")
    # a form without the file, a cut multipart body, a bad Content-Length
    r = requests.post(f"{server.url}/v1/analyze", files={"video": ("x.flv", flv)}, timeout=30)
    assert "'file'" in _error(r, 400, "bad_request")
    body, ctype = _multipart_cut(flv)
    _error(requests.post(f"{server.url}/v1/analyze", data=body, headers={"Content-Type": ctype}, timeout=30),
           400, "incomplete_upload")
    r = requests.post(f"{server.url}/v1/analyze", data=rng.bytes(3_000_000),
                      headers={"Content-Type": "application/octet-stream"}, timeout=30)
    _error(r, 413, "too_large")
    # nothing was kept of any of them
    assert requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"] == before
    assert not list((server.data_dir / "incoming").iterdir())


def test_a_job_from_a_url(server: ServerProcess, clips: dict[str, Path], http_site) -> None:
    """``?url=``: the server fetches the file (here from a real local site: this server allows private
    addresses) and analyses it as an upload, named by the URL's file name; a missing file, a URL that is not
    http(s), a body beside the url and a file over the upload limit are refused with the reason, leaving
    nothing behind."""
    import shutil

    base, site, served = http_site
    shutil.copy(clips["cremad_hap"], site / "happy clip.flv")
    r = requests.post(f"{server.url}/v1/analyze", params={"url": f"{base}/happy%20clip.flv", "wait": "true"},
                      timeout=120)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "done" and job["filename"] == "happy clip.flv" and served == ["/happy%20clip.flv"]
    assert job["options"]["url"] == f"{base}/happy%20clip.flv"
    direct = _post(server, clips["cremad_hap"], wait=True).json()
    assert [w["label"] for w in job["result"]["windows"]] == [w["label"] for w in direct["result"]["windows"]]
    before = requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"]
    (site / "big.flv").write_bytes(b"\0" * int(MAX_UPLOAD_MB * 1e6 + 10))
    for params, status, code, needle in (
            ({"url": f"{base}/missing.flv"}, 422, "download_failed", "HTTP 404"),
            ({"url": "ftp://example.org/a.mp4"}, 422, "bad_url", "not an http(s) URL"),
            ({"url": f"{base}/big.flv"}, 413, "too_large", f"limit of {MAX_UPLOAD_MB:g} MB")):
        r = requests.post(f"{server.url}/v1/analyze", params=params, timeout=60)
        assert needle in _error(r, status, code)
    r = requests.post(f"{server.url}/v1/analyze", params={"url": f"{base}/happy%20clip.flv"}, data=b"abc",
                      timeout=60)
    assert "not both" in _error(r, 400, "bad_request")
    assert requests.get(f"{server.url}/v1/jobs", timeout=30).json()["counts"] == before
    assert not list((server.data_dir / "incoming").iterdir())


def test_unknown_jobs_and_files(server: ServerProcess, clips: dict[str, Path]) -> None:
    unknown = "0123456789abcdef0123456789abcdef"
    for method, path in (("GET", f"/v1/jobs/{unknown}"), ("DELETE", f"/v1/jobs/{unknown}"),
                         ("GET", f"/v1/jobs/{unknown}/timeline.csv"), ("GET", "/v1/jobs/not-a-job"),
                         ("GET", "/v1/nothing")):
        _error(requests.request(method, server.url + path, timeout=30), 404, "not_found")
    _error(requests.get(f"{server.url}/v1/jobs", params={"limit": 0}, timeout=30), 422, "invalid_request")
    _error(requests.get(f"{server.url}/v1/jobs", params={"status": "lost"}, timeout=30), 422, "invalid_request")
    done = _post(server, clips["cremad_ang"], wait=True).json()
    _error(requests.get(f"{server.url}/v1/jobs/{done['id']}/upload", timeout=30), 404, "not_found")
    _error(requests.get(f"{server.url}/v1/jobs/{done['id']}/..%2F..%2Fjobs.sqlite3", timeout=30), 404, "not_found")


def test_queue_delete_and_not_ready(server: ServerProcess, clips: dict[str, Path]) -> None:
    ids = [_post(server, clips[k]).json()["id"] for k in ("ravdess_mp4", "cremad_hap", "cremad_sad")]
    last = ids[-1]  # queued behind two others on the one worker
    assert "queued" in _error(requests.get(f"{server.url}/v1/jobs/{last}/timeline.csv", timeout=30),
                              409, "not_ready")
    r = requests.delete(f"{server.url}/v1/jobs/{last}", timeout=30)
    assert r.status_code == 200 and r.json() == {"deleted": last, "was": "queued"}
    _error(requests.get(f"{server.url}/v1/jobs/{last}", timeout=30), 404, "not_found")
    assert not (server.data_dir / "jobs" / last).exists()
    for job_id in ids[:2]:
        assert _wait_done(server, job_id)["status"] == "done"
    listed = {j["id"] for j in requests.get(f"{server.url}/v1/jobs", timeout=30).json()["jobs"]}
    assert set(ids[:2]) <= listed and last not in listed
    assert requests.delete(f"{server.url}/v1/jobs/{ids[0]}", timeout=30).json()["was"] == "done"
    assert not (server.data_dir / "jobs" / ids[0]).exists()


def test_delete_a_running_job_stops_it(server: ServerProcess, clips: dict[str, Path]) -> None:
    job_id = _post(server, clips["ravdess_mp4"]).json()["id"]
    status = "queued"
    while status == "queued":
        status = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=30).json()["status"]
        time.sleep(0.01)
    r = requests.delete(f"{server.url}/v1/jobs/{job_id}", timeout=30)
    assert r.status_code == 200 and r.json()["was"] in ("running", "done")
    assert not (server.data_dir / "jobs" / job_id).exists()
    # the worker was replaced (or never interrupted): the next job runs
    after = _post(server, clips["cremad_hap"], wait=True).json()
    assert after["status"] == "done"
    time.sleep(0.5)
    assert not (server.data_dir / "jobs" / job_id).exists()  # nothing written back after the delete


def _piece(kind: int, t: float, payload: bytes) -> bytes:
    return struct.pack("<Bd", kind, round(t, 4)) + payload


def test_live_websocket_with_a_real_clip(server: ServerProcess, clips: dict[str, Path]) -> None:
    import cv2
    from websockets.sync.client import connect

    from avemo.media import iter_frames, read_audio

    frames = list(iter_frames(clips["ravdess_mp4"], 10.0, max_side=480))
    audio = read_audio(clips["ravdess_wav"], 16000)
    url = server.url.replace("http://", "ws://") + "/v1/live"
    events: list[dict] = []
    with connect(url, max_size=None, open_timeout=30) as ws:
        ws.send(json.dumps({"type": "start", "video": True, "audio": True}))
        while (msg := json.loads(ws.recv(timeout=120)))["type"] != "ready":
            assert msg["type"] == "loading", msg
        assert msg["sample_rate"] == 16000
        t0, fi, ai, step = time.perf_counter(), 0, 0, 1600  # real-time pace: frames at 10 fps, audio in 0.1 s
        while fi < len(frames) or ai < len(audio):
            now = time.perf_counter() - t0
            if fi < len(frames) and frames[fi].time <= now:
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frames[fi].image, cv2.COLOR_RGB2BGR))
                ws.send(_piece(1, now, jpeg.tobytes()))
                fi += 1
            if ai < len(audio) and (ai + step) / 16000 <= now:
                ws.send(_piece(2, now, (np.clip(audio[ai:ai + step], -1, 1) * 32767).astype("<i2").tobytes()))
                ai += step
            try:
                events.append(json.loads(ws.recv(timeout=0.01)))
            except TimeoutError:
                pass
        ws.send(json.dumps({"type": "stop"}))
        while (msg := json.loads(ws.recv(timeout=60)))["type"] != "summary":
            events.append(msg)
    summary = msg
    # how many frames the analyzer gets to depends on the machine (a frame that waits is replaced by a fresher
    # one, and its sampling instant counted as dropped): assert the mechanism, not a count only a fast CPU reaches
    assert all(e["type"] == "event" for e in events) and summary["events"] == len(events) >= 2
    assert summary["processed"] >= 1 and summary["voice_steps"] >= 2
    assert summary["processed"] + summary["dropped"] <= (len(frames) - 1) // 2 + 1  # 5 fps instants of the clip
    assert {e["source"] for e in events} >= {"av"}  # the face and the voice both found
    for e in events:
        assert e["latency_ms"] > 0
        if e["source"] == "none":  # a frame in which no face was found, and no speech yet: no label
            assert e["label"] is None and e["smoothed"] is None
            continue
        assert e["label"] in EMOTIONS and sum(e["smoothed"].values()) == pytest.approx(1.0, abs=1e-3)
    assert summary["latency_ms"]["n"] == len(events) and summary["latency_ms"]["median"] > 0
    assert summary["dropped_pieces"] == {"video": 0, "audio": 0} and summary["bad_frames"] == 0


def test_live_websocket_transcribes_with_text(server: ServerProcess, clips: dict[str, Path]) -> None:
    """``"text": true`` in the start message: the utterance's words come back on the events (the last one when the
    client stops); a language without text, or one Whisper does not know, is refused with the reason."""
    from websockets.sync.client import connect

    from avemo.media import read_audio

    audio = read_audio(clips["ravdess_wav"], 16000)
    url = server.url.replace("http://", "ws://") + "/v1/live"
    events: list[dict] = []
    with connect(url, max_size=None, open_timeout=30) as ws:
        ws.send(json.dumps({"type": "start", "video": False, "audio": True, "text": True, "language": "en"}))
        while (msg := json.loads(ws.recv(timeout=180)))["type"] != "ready":
            assert msg["type"] == "loading", msg
        assert msg["text"] is True
        for i in range(0, len(audio), 1600):  # the feed is not paced: pieces as fast as the socket takes them
            piece = (np.clip(audio[i:i + 1600], -1, 1) * 32767).astype("<i2").tobytes()
            ws.send(_piece(2, (i + 1600) / 16000, piece))
        ws.send(json.dumps({"type": "stop"}))
        while (msg := json.loads(ws.recv(timeout=120)))["type"] != "summary":
            events.append(msg)
    said = [e for e in events if e.get("transcript")]
    assert said and "talking by the door" in said[-1]["transcript"].lower(), events[-3:]
    assert said[-1]["text_emotion_words"] == 0 and said[-1]["weights"]["text"] == 0.0
    assert msg["utterances"] >= 1
    for start, needle in (({"language": "en"}, "language applies to text"),
                          ({"text": True, "language": "xx"}, "unknown language 'xx'")):
        with connect(url, open_timeout=30) as ws:
            ws.send(json.dumps({"type": "start", "video": False, "audio": True, **start}))
            while (msg := json.loads(ws.recv(timeout=180)))["type"] == "loading":
                pass
            assert msg["type"] == "error" and msg["code"] == "bad_message" and needle in msg["message"], msg


def test_live_websocket_lists_every_face_with_all_faces(server: ServerProcess, clips: dict[str, Path]) -> None:
    """``"all_faces": true``: two real faces side by side in the camera frames come back as two tracks, each with
    its box on its own side of the frame and a label."""
    import cv2
    from websockets.sync.client import connect

    from avemo.media import iter_frames

    rav = [cv2.resize(f.image, (360, 360)) for f in iter_frames(clips["ravdess_mp4"], 5.0, end=2.0)]
    cre = [cv2.resize(f.image, (480, 360)) for f in iter_frames(clips["cremad_hap"], 5.0, end=2.0)]
    url = server.url.replace("http://", "ws://") + "/v1/live"
    events: list[dict] = []
    with connect(url, max_size=None, open_timeout=30) as ws:
        ws.send(json.dumps({"type": "start", "video": True, "audio": False, "all_faces": True}))
        while (msg := json.loads(ws.recv(timeout=120)))["type"] != "ready":
            assert msg["type"] == "loading", msg
        assert msg["all_faces"] is True
        for i in range(min(len(rav), len(cre))):
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(np.concatenate([rav[i], cre[i]], axis=1), cv2.COLOR_RGB2BGR))
            ws.send(_piece(1, i / 5.0, jpeg.tobytes()))
            time.sleep(0.1)  # the feed keeps the freshest frame: give the analyzer time for each
        ws.send(json.dumps({"type": "stop"}))
        while (msg := json.loads(ws.recv(timeout=60)))["type"] != "summary":
            events.append(msg)
    listed = [e for e in events if e["faces"]]
    assert listed and all(len(e["faces"]) == 2 and sum(f["main"] for f in e["faces"]) == 1 for e in listed)
    left, right = sorted(listed[-1]["faces"], key=lambda f: f["box"][0])
    assert left["box"][2] <= 360 / 840 + 0.02 < right["box"][0] + 0.04 and left["track"] != right["track"]
    assert {left["label"], right["label"]} <= set(EMOTIONS)


def test_live_websocket_refuses_bad_input(server: ServerProcess) -> None:
    from websockets.sync.client import connect

    url = server.url.replace("http://", "ws://") + "/v1/live"
    with connect(url, open_timeout=30) as ws:
        ws.send("hello")
        msg = json.loads(ws.recv(timeout=30))
        assert msg["type"] == "error" and msg["code"] == "bad_message"
    with connect(url, open_timeout=30) as ws:
        ws.send(json.dumps({"type": "start", "video": True, "audio": False}))
        while json.loads(ws.recv(timeout=120))["type"] != "ready":
            pass
        ws.send(_piece(1, 0.1, b"this is not a jpeg"))
        msg = json.loads(ws.recv(timeout=30))
        assert msg["type"] == "error" and msg["code"] == "bad_frame"
