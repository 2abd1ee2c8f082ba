"""The server's parts without a server: the jobs store (status changes, recovery after a restart),
settings from the environment, upload names, the live protocol's parsing, the upload media check."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from avemo.errors import AvemoError, MediaError
from avemo.serve.livesocket import AUDIO, VIDEO, LiveInputError, jpeg_size, parse_piece
from avemo.serve.settings import Settings, settings_from_env
from avemo.serve.store import JobStore, valid_job_id
from avemo.serve.uploads import display_name


def _received(store: JobStore, data: bytes = b"media") -> Path:
    part = store.new_incoming()
    part.write_bytes(data)
    return part


def test_store_lifecycle(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    job = store.create(_received(store), filename="a.mp4", size=5, media={"duration": 2.0})
    assert valid_job_id(job.id) and job.status == "queued"
    assert store.upload_path(job.id).read_bytes() == b"media"
    assert not list(store.incoming.iterdir())  # moved, not copied
    assert store.claim(job.id) and not store.claim(job.id)  # one worker only
    store.set_progress(job.id, 0.5)
    assert store.get(job.id).progress == 0.5
    assert store.finish(job.id, {"dominant": "happy"}, {"csv": "timeline.csv"})
    assert not store.fail(job.id, "too late")  # a finished job stays finished
    done = store.get(job.id)
    assert done.status == "done" and done.summary == {"dominant": "happy"} and done.progress == 1.0
    assert done.to_dict()["downloads"] == ["csv"] and "upload" not in str(done.to_dict())
    assert store.delete(job.id).status == "done"
    assert store.get(job.id) is None and not store.job_dir(job.id).exists()
    assert store.delete(job.id) is None


def test_store_recover_after_restart(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    ids = [store.create(_received(store), filename=f"{i}.mp4", size=5, media={}).id for i in range(4)]
    store.claim(ids[0])
    store.finish(ids[0], {"dominant": "sad"}, {})
    store.claim(ids[1])  # running when the server dies
    half = _received(store)  # an upload being received when the server dies
    store.close()

    again = JobStore(tmp_path)
    queued, failed = again.recover()
    assert failed == [ids[1]] and queued == ids[2:]
    assert not half.exists()
    assert again.get(ids[0]).status == "done" and again.get(ids[0]).summary == {"dominant": "sad"}
    lost = again.get(ids[1])
    assert lost.status == "failed" and "server stopped" in lost.error
    assert [j.id for j in again.list()] == ids[::-1]  # newest first
    assert again.counts() == {"queued": 2, "running": 0, "done": 1, "failed": 1}
    assert [j.id for j in again.list(status="queued")] == ids[:1:-1]


def test_store_keeps_options_and_opens_a_database_from_before_them(tmp_path: Path) -> None:
    """A job keeps its client's analysis options; a jobs database written before options existed opens with its
    jobs intact (options empty) and takes new jobs with options."""
    import sqlite3

    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.executescript("CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, status TEXT NOT NULL, "
                      "filename TEXT NOT NULL, size INTEGER NOT NULL, media TEXT NOT NULL, created REAL NOT NULL, "
                      "started REAL, finished REAL, progress REAL NOT NULL DEFAULT 0, error TEXT, summary TEXT, "
                      "files TEXT);")
    old.execute("INSERT INTO jobs VALUES (?, 1, 'done', 'a.mp4', 5, '{}', 0, 0, 1, 1, NULL, '{}', '{}')", ("a" * 32,))
    old.commit()
    old.close()
    store = JobStore(tmp_path)
    assert store.get("a" * 32).options == {} and store.get("a" * 32).status == "done"
    job = store.create(_received(store), filename="b.wav", size=5, media={}, options={"text": True, "language": "en"})
    assert store.get(job.id).options == {"text": True, "language": "en"} == job.to_dict()["options"]


def test_job_ids_never_reach_paths(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    for bad in ("../etc", "g" * 32, "A" * 32, "0" * 31, "/tmp/x", ""):
        assert store.get(bad) is None
        with pytest.raises(ValueError):
            store.job_dir(bad)


def test_display_name() -> None:
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\talk.mp4") == "talk.mp4"
    assert display_name("a\x00b\nc.mp4") == "abc.mp4"
    assert display_name(None) == display_name("") == display_name("../") == "upload"
    assert len(display_name("x" * 1000)) == 200


def test_settings_from_env(tmp_path: Path) -> None:
    s = settings_from_env({"AVEMO_SERVE_DIR": str(tmp_path), "AVEMO_SERVE_WORKERS": "3",
                           "AVEMO_SERVE_MAX_UPLOAD_MB": "1.5", "AVEMO_API_KEY": "secret-key",
                           "AVEMO_SERVE_CORS": "http://a.example, http://b.example"})
    assert s.data_dir == tmp_path and s.workers == 3 and s.max_upload_bytes == 1_500_000
    assert s.api_key == "secret-key" and s.cors_origins == ("http://a.example", "http://b.example")
    assert s.host == "127.0.0.1"  # loopback unless told otherwise
    default = settings_from_env({"AVEMO_SERVE_DIR": str(tmp_path)})
    assert default.api_key is None and default.cors_origins == ()
    with pytest.raises(AvemoError, match="AVEMO_SERVE_WORKERS"):
        settings_from_env({"AVEMO_SERVE_WORKERS": "two"})
    with pytest.raises(AvemoError, match="max_upload_mb"):
        settings_from_env({"AVEMO_SERVE_MAX_UPLOAD_MB": "-1"})
    with pytest.raises(AvemoError, match="at least 8"):
        settings_from_env({"AVEMO_API_KEY": "short"})
    with pytest.raises(AvemoError, match="workers"):
        Settings(data_dir=tmp_path, workers=0).check()
    assert default.urls == "public" and settings_from_env({"AVEMO_SERVE_URLS": "off"}).urls == "off"
    with pytest.raises(AvemoError, match="urls must be one of public, any, off"):
        settings_from_env({"AVEMO_SERVE_URLS": "all"})


def test_a_server_told_not_to_fetch_refuses_a_url_before_any_request(tmp_path: Path, http_site) -> None:
    from avemo.serve.app import _fetch_url
    from avemo.serve.errors import ApiError

    base, site, served = http_site
    (site / "clip.flv").write_bytes(b"FLV")
    store = JobStore(tmp_path / "data")
    for urls, code in (("off", "urls_off"), ("public", "download_failed")):
        with pytest.raises(ApiError) as err:
            _fetch_url(f"{base}/clip.flv", store, Settings(data_dir=tmp_path, urls=urls))
        assert err.value.code == code, err.value
    assert not served and not list(store.incoming.iterdir())
    got = _fetch_url(f"{base}/clip.flv", store, Settings(data_dir=tmp_path, urls="any"))
    assert got.path.read_bytes() == b"FLV" and got.filename == "clip.flv" and got.size == 3


def _jpeg(w: int, h: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), 128, np.uint8))
    assert ok
    return buf.tobytes()


def test_live_pieces() -> None:
    assert jpeg_size(_jpeg(64, 48)) == (64, 48)
    assert jpeg_size(b"\x89PNG....") is None
    last: dict[int, float] = {}
    kind, t, data = parse_piece(struct.pack("<Bd", VIDEO, 0.5) + _jpeg(64, 48), last, 60)
    assert (kind, t) == (VIDEO, 0.5) and data[:2] == b"\xff\xd8"
    assert parse_piece(struct.pack("<Bd", VIDEO, 0.5) + _jpeg(64, 48), last, 60) is None  # not newer: skipped
    pcm = (np.sin(np.arange(1600) / 10) * 16000).astype("<i2")
    kind, t, samples = parse_piece(struct.pack("<Bd", AUDIO, 0.1) + pcm.tobytes(), last, 60)
    assert kind == AUDIO and samples.dtype == np.float32 and np.allclose(samples, pcm / 32768.0)
    bad = [b"\x01", struct.pack("<Bd", 7, 1.0) + b"xx", struct.pack("<Bd", VIDEO, float("nan")) + b"xx",
           struct.pack("<Bd", VIDEO, 2.0) + b"not a jpeg", struct.pack("<Bd", VIDEO, 3.0) + _jpeg(4000, 16),
           struct.pack("<Bd", AUDIO, 2.0) + b"\x00" * 3, struct.pack("<Bd", AUDIO, 3.0) + b"\x00" * 64000]
    for message in bad:
        with pytest.raises(LiveInputError):
            parse_piece(message, last, 60)


def test_check_media_on_real_and_damaged_files(clips: dict[str, Path], tmp_path: Path) -> None:
    from avemo.serve.engine import check_media

    flv = check_media(clips["cremad_hap"], "hap.flv")
    assert flv["has_video"] and flv["has_audio"] and not flv["playable"] and 1.8 < flv["duration"] < 1.9
    wav = check_media(clips["ravdess_wav"], "x.wav")
    assert not wav["has_video"] and wav["playable"]
    data = clips["cremad_hap"].read_bytes()
    cut = tmp_path / "cut"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated") as err:
        check_media(cut, "cut.flv")
    assert err.value.path == "cut.flv"  # the client's name, never the server's path
    text = tmp_path / "text"
    text.write_text("just some text\n" * 20)
    with pytest.raises(MediaError, match="cannot be opened"):
        check_media(text, "notes.mp4")
    import cv2

    image = tmp_path / "image"
    cv2.imwrite(str(image) + ".jpg", np.zeros((32, 32, 3), np.uint8))
    Path(str(image) + ".jpg").rename(image)
    facts = check_media(image, "photo.mp4")  # a photo, whatever its name says: analysed as the CLI does
    assert (facts["kind"], facts["width"], facts["height"], facts["duration"]) == ("image", 32, 32, 0.0)
    assert not facts["has_video"] and not facts["has_audio"] and not facts["playable"]
    broken = tmp_path / "broken"
    broken.write_bytes(Path(str(image)).read_bytes()[:8] + b"\0" * 200)  # a PNG/JPEG start, then nothing
    with pytest.raises(MediaError) as err:
        check_media(broken, "face.jpg")
    assert err.value.path == "face.jpg"


def test_the_page_draws_each_emotion_in_the_colour_of_the_png_figures() -> None:
    """``app.js`` repeats :data:`avemo.labels.EMOTION_COLORS` (the timeline and photo PNGs, annotated videos)."""
    import re

    from avemo.labels import EMOTION_COLORS
    from avemo.serve.app import STATIC_DIR

    block = re.search(r"const COLORS = \{(.*?)\};", (STATIC_DIR / "app.js").read_text(), re.S)
    assert block is not None
    assert dict(re.findall(r'(\w+): "(#[0-9a-f]{6})"', block.group(1))) == EMOTION_COLORS
