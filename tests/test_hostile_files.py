"""Hostile files: mutated, truncated and spliced real media thrown at the readers of :mod:`avemo.media` and at
``Analyzer.analyze`` (a bounded, derandomized Hypothesis search), and decompression bombs.

Every file goes to a separate worker process (``hostile_worker.py``, address space capped), so a hang (no answer
within the time limit) or a crash (the process dies) is seen and fails the example, as does any exception that
is not the library's own error naming the file. Bombs must be refused by :mod:`avemo.media.limits` quickly and
with little memory, never by running out of it.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = pytest.mark.slow  # a minute or more on 2 shared cores

READ_TIMEOUT_S = 30.0  # generous for a loaded 2-core machine: the check is "no hang", not speed
ANALYZE_TIMEOUT_S = 90.0
WORKER = Path(__file__).with_name("hostile_worker.py")
FUZZ = {"derandomize": True, "database": None, "deadline": None, "print_blob": False,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


class Worker:
    """The worker process, restarted after a hang or a crash."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, str(WORKER), "--max-gb", "6"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log.open("a"), text=True, env=env)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def ask(self, op: str, path: Path, timeout: float) -> dict:
        if self.proc is None:
            self.start()
        t0 = time.perf_counter()
        self.proc.stdin.write(json.dumps({"op": op, "path": str(path)}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.stop()
            return {"hang": True}
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return {"crash": code}
        return {**json.loads(line), "seconds": time.perf_counter() - t0}


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = Worker(tmp_path_factory.mktemp("hostile") / "worker.log")
    w.start()
    yield w
    w.stop()


def _encode(path: Path, frames: list[np.ndarray], audio: np.ndarray | None, rate: int, *, video: str | None,
            audio_codec: str | None) -> bytes:
    """Real frames and sound re-encoded with PyAV (small seeds of other containers and codecs)."""
    import av

    with av.open(str(path), "w") as out:
        vs = aus = None
        if video:
            vs = out.add_stream(video, rate=25)
            vs.width, vs.height, vs.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if audio_codec:
            aus = out.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else rate)
            aus.layout = "mono"
        if vs is not None:
            for k, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = k, Fraction(1, 25)
                for pkt in vs.encode(frame):
                    out.mux(pkt)
            for pkt in vs.encode(None):
                out.mux(pkt)
        if aus is not None:
            resampler = av.AudioResampler(format=aus.format.name, layout="mono", rate=aus.rate)
            frame = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="flt", layout="mono")
            frame.sample_rate = rate
            for f in resampler.resample(frame) + resampler.resample(None):
                for pkt in aus.encode(f):
                    out.mux(pkt)
            for pkt in aus.encode(None):
                out.mux(pkt)
    return path.read_bytes()


@pytest.fixture(scope="module")
def seeds(clips, data, tmp_path_factory) -> dict[str, bytes]:
    """Real media: shared files as they are, and the shared clip's face and voice in other containers and codecs."""
    from avemo.media import iter_frames, read_audio

    folder = tmp_path_factory.mktemp("seeds")
    frames = [f.image[: f.image.shape[0] // 2 * 2, : f.image.shape[1] // 2 * 2]
              for f in iter_frames(clips["ravdess_mp4"], 25.0, max_side=96, end=1.2)]
    speech = read_audio(clips["ravdess_wav"], 16000)[16000:40000]  # 1.5 s in the middle of the sentence
    fer = sorted((data / "fer2013" / "test" / "happy").glob("PrivateTest_*.jpg"))[0]
    flac = data / "ravdess-speech-16k" / "Actor_01" / "03-01-01-01-01-01-01.flac"
    out = {"cremad.flv": clips["cremad_hap"].read_bytes(), "ravdess.mp4": clips["ravdess_mp4"].read_bytes(),
           "speech.flac": flac.read_bytes(), "face.jpg": fer.read_bytes(),
           "talk.mp4": _encode(folder / "talk.mp4", frames, speech, 16000, video="libx264", audio_codec="aac"),
           "talk.webm": _encode(folder / "talk.webm", frames, speech, 16000, video="libvpx", audio_codec="libopus"),
           "speech.wav": _encode(folder / "speech.wav", [], speech, 16000, video=None, audio_codec="pcm_s16le"),
           "speech.mp3": _encode(folder / "speech.mp3", [], speech, 16000, video=None, audio_codec="libmp3lame")}
    return out


SUFFIXES = (".mp4", ".mkv", ".flv", ".wav", ".mp3", ".jpg", ".png")
EXTREMES = (b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\x00\x00\x01\x00")


def hostile(draw, seeds: dict[str, bytes]) -> tuple[str, bytes, str]:
    """A description, the mutated bytes and the file suffix, drawn from the seeds."""
    name = draw(st.sampled_from(sorted(seeds)))
    data = seeds[name]
    n = len(data)

    def pos(limit: int = n) -> int:  # half the time in the first 1 kB, where the headers and their claims are
        return draw(st.one_of(st.integers(0, max(0, min(limit, 1024) - 1)), st.integers(0, max(0, limit - 1))))

    op = draw(st.sampled_from(["truncate", "flip", "extreme", "splice", "repeat"]))
    if op == "truncate":
        cut = pos(n + 1)
        out, what = data[:cut], f"{name} cut at {cut}"
    elif op == "flip":
        b = bytearray(data)
        spots = draw(st.lists(st.tuples(st.just(0).map(lambda _: pos()), st.integers(1, 255)), min_size=1,
                              max_size=16))
        for p, x in spots:
            b[p] ^= x
        out, what = bytes(b), f"{name} with {len(spots)} bytes flipped at {[p for p, _ in spots][:4]}..."
    elif op == "extreme":
        p, value = pos(max(1, n - 4)), draw(st.sampled_from(EXTREMES))
        out, what = data[:p] + value + data[p + 4:], f"{name} with {value.hex()} written at {p}"
    elif op == "splice":
        other = draw(st.sampled_from(sorted(seeds)))
        a, b = pos(n + 1), draw(st.integers(0, len(seeds[other])))
        out, what = data[:a] + seeds[other][b:], f"{name}[:{a}] + {other}[{b}:]"
    else:
        p, length, at = pos(), draw(st.integers(1, 4096)), pos(n + 1)
        out, what = data[:at] + data[p:p + length] + data[at:], f"{name} with [{p}:{p + length}] repeated at {at}"
    suffix = draw(st.one_of(st.just(Path(name).suffix), st.sampled_from(SUFFIXES)))
    return what, out, suffix


def _check(answer: dict, path: Path, what: str, limit: float) -> None:
    assert "hang" not in answer, f"{what}: no answer within {limit:.0f} s (a hang)"
    assert "crash" not in answer, f"{what}: the process died (exit code {answer.get('crash')})"
    if not answer["ok"]:
        assert answer["avemo"], f"{what}: {answer['type']} instead of the library's error: {answer['message']}"
        assert str(path) in answer["message"], f"{what}: the error does not name the file: {answer['message']}"


def _fuzz(worker, seeds, folder: Path, op: str, timeout: float, examples: int) -> None:
    outcomes: dict[str, int] = {}

    @settings(max_examples=examples, **FUZZ)
    @given(st.data())
    def run(drawn) -> None:
        what, content, suffix = hostile(drawn.draw, seeds)
        path = folder / f"case{suffix}"
        path.write_bytes(content)
        answer = worker.ask(op, path, timeout)
        _check(answer, path, what, timeout)
        kind = "ok" if answer["ok"] else answer["type"]
        outcomes[kind] = outcomes.get(kind, 0) + 1

    run()
    # the search reached both sides: files that still decode and files the readers refuse
    assert outcomes.get("ok", 0) > 0 and sum(v for k, v in outcomes.items() if k != "ok") > 0, outcomes


def test_readers_fail_only_with_media_errors(worker, seeds, tmp_path):
    _fuzz(worker, seeds, tmp_path, "read", READ_TIMEOUT_S, examples=150)


def test_analyze_fails_only_with_avemo_errors(worker, seeds, tmp_path):
    _fuzz(worker, seeds, tmp_path, "analyze", ANALYZE_TIMEOUT_S, examples=25)


# ---- decompression bombs: a tiny file that claims a huge frame or duration -------------------------------------

def _jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose start-of-frame header claims ``width`` x ``height`` (the scan data stays 48 x 48)."""
    i = 2
    while i + 4 <= len(jpeg):
        marker, length = jpeg[i + 1], struct.unpack(">H", jpeg[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            b = bytearray(jpeg)
            b[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(b)
        i += 2 + length
    raise AssertionError("no start-of-frame marker")


def _mjpeg_mkv(path: Path, frame: bytes, width: int, height: int) -> Path:
    """A Matroska file of MJPEG frames claiming ``width`` x ``height`` (a few kB)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for k in range(5):
            pkt = av.Packet(frame)
            pkt.stream, pkt.pts, pkt.dts, pkt.time_base = stream, k, k, Fraction(1, 25)
            out.mux(pkt)
    return path


def _mkv_claiming_duration(path: Path, seconds: float) -> Path:
    """A real 64 x 64 H.264 Matroska file (0.4 s) whose segment header claims ``seconds``."""
    import av

    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width = vs.height = 64
        vs.pix_fmt = "yuv420p"
        for k in range(10):
            for pkt in vs.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * k, np.uint8), format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    b = bytearray(path.read_bytes())
    at = b.find(b"\x44\x89\x88")  # the Duration element (an 8-byte float, in milliseconds)
    assert at > 0
    b[at + 3:at + 11] = struct.pack(">d", seconds * 1000.0)
    path.write_bytes(bytes(b))
    return path


@pytest.fixture(scope="module")
def bombs(data, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    jpeg = sorted((data / "fer2013" / "test" / "happy").glob("PrivateTest_*.jpg"))[0].read_bytes()
    big = _jpeg_claiming(jpeg, 12000, 12000)  # 144 megapixels: 432 MB of RGB from 2 kB
    (folder / "huge.jpg").write_bytes(big)
    (folder / "huger.jpg").write_bytes(_jpeg_claiming(jpeg, 16000, 16000))  # past Pillow's own refusal
    return {"huge.jpg": folder / "huge.jpg", "huger.jpg": folder / "huger.jpg",
            "huge_frames.mkv": _mjpeg_mkv(folder / "huge_frames.mkv", big, 12000, 12000),
            "century.mkv": _mkv_claiming_duration(folder / "century.mkv", 100 * 365.25 * 86400)}


@pytest.mark.parametrize("name", ["huge.jpg", "huger.jpg", "huge_frames.mkv", "century.mkv"])
@pytest.mark.parametrize("op", ["read", "analyze"])
def test_decompression_bombs_are_refused_by_the_limits(worker, bombs, name, op):
    path = bombs[name]
    assert path.stat().st_size < 20_000
    answer = worker.ask(op, path, ANALYZE_TIMEOUT_S)
    _check(answer, path, name, ANALYZE_TIMEOUT_S)
    assert not answer["ok"] and answer["type"] == "MediaError" and "above the limit" in answer["message"]
    # refused up front, not after allocating (huge.jpg alone would take 432 MB of RGB)
    assert answer["seconds"] < 10 and answer["peak_mb"] - answer["rss_before_mb"] < 300


def test_limits_are_settings(clips, data):
    from avemo.errors import MediaError
    from avemo.media import get_limits, media_limits, probe, read_image

    face = sorted((data / "fer2013" / "test" / "happy").glob("PrivateTest_*.jpg"))[0]  # 48 x 48
    with media_limits(max_duration=1.0), pytest.raises(MediaError, match="above the limit of 0.0 hours"):
        probe(clips["cremad_hap"])  # 1.9 s
    with media_limits(max_pixels=2000):
        assert get_limits().max_pixels == 2000
        with pytest.raises(MediaError, match="48 x 48 image"):
            read_image(face)
        with pytest.raises(MediaError, match="720 x 720 frames"):
            probe(clips["ravdess_mp4"])
    assert get_limits().max_pixels == 8192 * 8192 and read_image(face).shape == (48, 48, 3)  # defaults back
    assert probe(clips["cremad_hap"]).duration > 1.0
