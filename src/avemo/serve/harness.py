"""A real server in a subprocess, and a headless Chromium to drive its page: what the tests, the load
benchmark and the README screenshot use. Loopback only.

Chromium is Debian's (``/usr/bin/chromium`` with ``/usr/bin/chromedriver``, driven by Selenium);
nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1400")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``avemo serve`` on a free loopback port, data in ``data_dir``; :meth:`start` waits until its
    workers have loaded the models. :meth:`kill` ends it as a crash would (SIGKILL)."""

    def __init__(self, data_dir: str | Path, *, workers: int = 1, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), log_path: str | Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.workers, self.extra_env, self.args = workers, env or {}, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else self.data_dir.parent / f"server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 300.0) -> ServerProcess:
        env = {**os.environ, **self.extra_env, "AVEMO_SERVE_DIR": str(self.data_dir)}
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "avemo.cli", "serve", "--port", str(self.port), "--workers", str(self.workers),
             "--log-level", "warning", *self.args],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); log: {self.log_path}")
            try:
                health = self.get_json("/healthz")
                if health["ready"] >= self.workers:
                    return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server was not ready within {timeout:g} s; log: {self.log_path}")

    def get_json(self, path: str, headers: dict[str, str] | None = None) -> Any:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def stop(self, timeout: float = 20.0) -> None:
        """A graceful stop (SIGINT, as Ctrl-C), then SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """End the server abruptly, like a crash (its workers die with it)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def chromium_available() -> bool:
    return CHROMIUM.is_file() and CHROMEDRIVER.is_file()


def chromium(*, extra_flags: tuple[str, ...] = ()) -> Any:
    """A Selenium WebDriver for Debian's headless Chromium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def looped_clip(seconds: float, out: str | Path, *, video: str | Path, audio: str | Path, side: int = 480) -> Path:
    """A talking-face video of ``seconds``: ``video``'s frames and ``audio`` (its own speech) looped,
    as H.264 + AAC mp4 (for the screenshot and the browser test; made once)."""
    import av
    import numpy as np

    from avemo.media import iter_frames, probe, read_audio, write_video

    out = Path(out)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fps = float(probe(video).fps or 30.0)
    frames = [f.image for f in iter_frames(video, None, max_side=side)]
    rate = 48000
    wave = np.resize(read_audio(audio, rate), int(seconds * rate)).astype(np.float32)
    wav = out.with_suffix(".wav")
    with av.open(str(wav), "w") as c:
        stream = c.add_stream("pcm_s16le", rate=rate, layout="mono")
        for s in range(0, wave.size, 4096):
            frame = av.AudioFrame.from_ndarray(wave[None, s:s + 4096], format="flt", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    n = int(round(seconds * fps))
    try:
        write_video(out, (frames[i % len(frames)] for i in range(n)), fps, audio_from=wav)
    finally:
        wav.unlink(missing_ok=True)
    return out
