"""Test videos in the encodings people bring, and the three ways of timing each: the decode floor, the Python
API and the command line end to end (``avemo bench speed`` runs them side by side, :mod:`avemo.bench.speed`).

Every video is 60 s of the shared RAVDESS talking face (actor 19, surprised), looped with its own speech,
scaled to fill the frame's height (the width for the portrait video), built once and cached under
``$AVEMO_CACHE/bench``:

==========================  =====================================================================================
``h264-default-720p``       1280x720 H.264 High, x264's default preset (medium, CRF 23) + AAC: what editors export
``h264-veryfast-720p``      1280x720 H.264, x264 ``veryfast`` + AAC (the earlier benchmark video)
``vp9-opus-720p``           1280x720 VP9 (libvpx realtime, as browsers record) + Opus in WebM
``hevc-1080p``              1920x1080 HEVC (x265 ``fast``) + AAC
``phone-portrait-1080p``    a phone held upright: 1080x1920 shown, stored 1920x1080 H.264 with a 90° rotation flag
==========================  =====================================================================================
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from avemo.config import cache_root, data_root
from avemo.errors import AvemoError

CLIP = Path("clips/ravdess/01-01-08-02-01-01-19.mp4")
WAV = Path("clips/ravdess/03-01-08-02-01-01-19.wav")


@dataclass(frozen=True)
class Encoding:
    """How one test video is made: canvas, codec and options, audio codec, container, rotation flag."""

    name: str
    width: int  #: stored frame size (before rotation)
    height: int
    codec: str
    options: dict[str, str]
    audio: str
    suffix: str
    rotation: int = 0  #: display rotation flag (degrees counter-clockwise, as phones write it)
    pix_fmt: str = "yuv420p"
    note: str = ""


ENCODINGS: dict[str, Encoding] = {e.name: e for e in (
    Encoding("h264-default-720p", 1280, 720, "libx264", {"preset": "medium", "crf": "23", "profile": "high"},
             "aac", ".mp4", note="x264 default preset (High profile, CABAC, 3 B-frames)"),
    Encoding("h264-veryfast-720p", 1280, 720, "libx264", {"preset": "veryfast", "crf": "23"}, "aac", ".mp4",
             note="x264 veryfast (the earlier benchmark video)"),
    Encoding("vp9-opus-720p", 1280, 720, "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "b": "2M",
                                                        "row-mt": "1"}, "libopus", ".webm",
             note="VP9 realtime + Opus, WebM (browser recordings)"),
    Encoding("hevc-1080p", 1920, 1080, "libx265", {"preset": "fast", "crf": "26", "x265-params": "log-level=error"},
             "aac", ".mp4", note="HEVC 1080p, x265 fast"),
    Encoding("phone-portrait-1080p", 1920, 1080, "libx264", {"preset": "medium", "crf": "23", "profile": "high"},
             "aac", ".mp4", rotation=90, note="portrait 1080x1920 stored landscape with a rotation flag"),
)}


def build_video(encoding: Encoding | str, seconds: float = 60.0, out: Path | None = None) -> Path:
    """The test video of ``encoding`` (made once, then taken from the cache)."""
    import av
    import cv2

    from avemo.media import iter_frames, probe, read_audio

    enc = ENCODINGS[encoding] if isinstance(encoding, str) else encoding
    src, wav = data_root() / CLIP, data_root() / WAV
    for p in (src, wav):
        if not p.is_file():
            raise AvemoError(f"{p}: the speed benchmark needs the shared clips (set AVEMO_DATA)")
    out = out or cache_root() / "bench" / f"talking_face_{int(seconds)}s_{enc.name}{enc.suffix}"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fps = float(probe(src).fps or 30.0)
    shown_w, shown_h = (enc.height, enc.width) if enc.rotation in (90, 270) else (enc.width, enc.height)
    side = min(shown_w, shown_h)
    clip = [cv2.resize(f.image, (side, side), interpolation=cv2.INTER_CUBIC) for f in iter_frames(src, None)]
    audio = read_audio(wav, 48000)
    canvas = np.full((shown_h, shown_w, 3), 40, np.uint8)
    x0, y0 = (shown_w - side) // 2, (shown_h - side) // 2
    tmp = out.with_name(out.stem + ".part" + enc.suffix)
    with av.open(str(tmp), "w") as c:
        vs = c.add_stream(enc.codec, rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = enc.width, enc.height, enc.pix_fmt
        vs.options = dict(enc.options)
        if enc.rotation:
            vs.set_display_rotation(enc.rotation)  # the display matrix, as a phone writes it
        aus = c.add_stream(enc.audio, rate=48000, layout="mono")
        for i in range(int(round(seconds * fps))):
            canvas[y0:y0 + side, x0:x0 + side] = clip[i % len(clip)]
            stored = np.ascontiguousarray(np.rot90(canvas, k=-enc.rotation // 90)) if enc.rotation else canvas
            for pkt in vs.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                c.mux(pkt)
        total = int(seconds * 48000)
        loop = np.resize(audio, total).astype(np.float32)
        step = 960 if enc.audio == "libopus" else 1024
        for s in range(0, total, step):
            frame = av.AudioFrame.from_ndarray(loop[None, s:s + step], format="flt", layout="mono")
            frame.sample_rate = 48000
            for pkt in aus.encode(frame):
                c.mux(pkt)
        for stream in (vs, aus):
            for pkt in stream.encode(None):
                c.mux(pkt)
    os.replace(tmp, out)
    return out


_FLOOR = """
import json, resource, sys, time
import av
t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
n = 0
with av.open(sys.argv[1]) as c:
    s = c.streams.video[0]
    s.codec_context.thread_type = "AUTO"
    s.codec_context.skip_frame = "NONREF"
    if sys.argv[2:] == ["skip_loop_filter"]:
        s.codec_context.options = {"skip_loop_filter": "all"}
    for frame in c.decode(s):
        n += 1
c1 = resource.getrusage(resource.RUSAGE_SELF)
from avemo.provenance import peak_rss_mb
print(json.dumps({"wall_s": time.perf_counter() - t0, "cpu_s": c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime,
                  "frames": n, "peak_rss_mb": peak_rss_mb()}))
"""

_CLI = """
import json, resource, sys
from avemo.cli import exit_now, main
from avemo.provenance import peak_rss_mb
rc = main(sys.argv[1:])
r, h = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("AVEMO-RUSAGE " + json.dumps({"rc": rc, "cpu_s": r.ru_utime + r.ru_stime, "peak_rss_mb": peak_rss_mb(),
                                    "helper_cpu_s": h.ru_utime + h.ru_stime, "helper_peak_rss_mb": h.ru_maxrss / 1024}))
exit_now(rc)  # as the avemo script ends
"""


def decode_floor(video: Path, *, skip_loop_filter: bool = False) -> dict[str, Any]:
    """PyAV alone decoding the video stream (frame threads, non-reference frames skipped; with
    ``skip_loop_filter`` the deblocking filter too, as the analyzer's default does), in a fresh process."""
    extra = ["skip_loop_filter"] if skip_loop_filter else []
    proc = subprocess.run([sys.executable, "-c", _FLOOR, str(video), *extra], capture_output=True, text=True,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli_end_to_end(video: Path) -> dict[str, Any]:
    """``avemo analyze VIDEO --out DIR`` as a user runs it: process start to files written."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CLI, "analyze", str(video), "--out", tmp],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # a crash prints its threads' stacks
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            how = (f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                   else f"exit status {proc.returncode}")
            raise AvemoError(f"avemo analyze {video} failed ({how}) after {wall:.1f} s:\n"
                             f"stderr: {proc.stderr[-2000:] or '(empty)'}\nstdout: {proc.stdout[-500:] or '(empty)'}")
        written = sorted(p.name for p in Path(tmp).rglob("*") if p.is_file())
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("AVEMO-RUSAGE "))
    usage = json.loads(line.split(" ", 1)[1])
    if usage["rc"] != 0:  # the command ran to its end and said the file failed
        raise AvemoError(f"avemo analyze {video} failed (avemo's exit status {usage['rc']}):\n{proc.stderr[-2000:]}")
    return {"wall_s": wall, **usage, "files": written}
