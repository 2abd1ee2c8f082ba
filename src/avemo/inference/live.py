"""Live analysis: a webcam and microphone, a stream, or a file played at real-time speed, turned
into a running emotion label with bounded latency.

Data flow (producers run in their own threads; the consumer runs in the caller's thread)::

    source ─ decode ─ pace ─┬─ frame ─► [1-frame slot] ─► sample @fps ─ FaceScanner ─ face model ─┐
    (file, URL, webcam,     └─ audio ─► [audio inbox] ─► last `window` s ─ every hop: VAD ─ voice ─┴─ fuse ─ EMA
     microphone)                                                                                       ─► LiveEvent

- A frame is *captured* at the wall time its timestamp falls due (files and streams, divided by
  ``speed``) or when a device delivers it. Its event's ``latency_ms`` is the wall time from that
  capture to the event's emission.
- The frame slot holds one frame: a frame that arrives while the consumer is busy replaces the
  one waiting, so latency stays bounded; the sampling instants (every ``1 / fps`` s of media time)
  that were skipped this way are counted as ``dropped``.
- Every ``hop`` s of audio the last ``window`` s are checked with Silero VAD; with enough speech the
  voice model runs and its probabilities stand until the next hop (none without speech).
- Face and voice probabilities are fused by the fusion bundle (as in the offline analyzer) and smoothed
  with an exponential moving average of time constant ``smooth`` s (media time).

Latency (budget: 300 ms from a frame to its label). Measured on the shared clips played in real
time on the 2-core development machine while other jobs kept it at a load of 10-11, with the
shipped bundles of the time (face network with ten-crop views), no frame dropped at 5 fps: over
57 events, median 87 ms, p95 112 ms, max 149 ms (a later run: max 213 ms). The ten-crop views cost
55-73 ms of that per frame; the face bundle now ships with flip views (2 passes): on the quiet
machine, 12 s of 720p video gave median 19 ms, p95 23 ms, max 25 ms. Per call otherwise: MediaPipe + alignment
11-26 ms, VAD over 3 s 7-26 ms, voice network 3-9 ms. One network thread (``threads=1``) matters:
with two, the face network took 2-4x longer per frame on the loaded machine (see
:class:`LiveAnalyzer`).
"""

from __future__ import annotations

import contextlib
import heapq
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import AvemoError, MediaError
from avemo.inference.predictors import DEFAULT_MODELS, FacePredictor, VoicePredictor, load_fusion
from avemo.labels import EMOTIONS

SAMPLE_RATE = 16000
_AUDIO_CHUNK_S = 0.05  # audio is handed over in pieces of this length
_EPS = 1e-6

Item = tuple[str, float, np.ndarray]  # ("video" | "audio", media time, RGB image | 16 kHz samples)


# ---- sources ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceSpec:
    """What to read: ``kind`` is ``"file"``, ``"url"`` or ``"webcam"``; ``mic`` an input device
    ``(format, name)`` such as ``("alsa", "default")``, or None."""

    kind: str
    target: str
    mic: tuple[str, str] | None = None

    @property
    def realtime(self) -> bool:
        """Devices deliver in real time by themselves; files and streams are paced."""
        return self.kind == "webcam"


def parse_source(source: str | Path, mic: str | None = None) -> SourceSpec:
    """``webcam`` / ``webcam:N`` / ``/dev/videoN`` (v4l2), a URL (``scheme://...``), or a file path.

    ``mic`` is ``default``, ``alsa:NAME`` or ``pulse:NAME``; it only goes with a webcam (a file or
    stream brings its own audio).
    """
    text = str(source)
    if text == "webcam" or text.startswith("webcam:"):
        index = text.partition(":")[2] or "0"
        if not index.isdigit():
            raise AvemoError(f"--source {text}: the webcam number must be an integer (webcam:0, webcam:1, ...)")
        spec = SourceSpec("webcam", f"/dev/video{int(index)}")
    elif text.startswith("/dev/video"):
        spec = SourceSpec("webcam", text)
    elif "://" in text or text.startswith("file:"):
        spec = SourceSpec("url", text)
    else:
        spec = SourceSpec("file", text)
    if mic is None:
        return spec
    if spec.kind != "webcam":
        raise AvemoError(f"--mic goes with a webcam source; {text} brings its own audio track")
    fmt, sep, name = mic.partition(":")
    device = (fmt, name) if sep and fmt in ("alsa", "pulse") else ("alsa", mic)
    return SourceSpec(spec.kind, spec.target, device)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _device_label(fmt: str, name: str) -> str:
    return name if fmt == "v4l2" else f"{fmt}:{name}"


def _check_device(fmt: str, name: str, what: str) -> None:
    import av

    label = _device_label(fmt, name)
    if fmt == "v4l2" and not Path(name).exists():
        raise MediaError(label, f"no {what} there (device not found; is a camera connected?)")
    if fmt not in av.formats_available:
        raise MediaError(label, f"cannot open the {what}: this FFmpeg build (PyAV {av.__version__}) has no "
                                f"'{fmt}' input device support")


def check_source(spec: SourceSpec) -> None:
    """The cheap checks of :func:`open_source` (file readable, devices present and supported), so a
    command can fail before it loads models; network streams are only tried when opened."""
    if spec.kind == "file":
        from avemo.media import probe

        probe(spec.target)
    if spec.kind == "webcam":
        _check_device("v4l2", spec.target, "webcam")
    if spec.mic is not None:
        _check_device(spec.mic[0], spec.mic[1], "microphone")


def open_device(fmt: str, name: str, what: str, options: dict[str, str] | None = None):
    """An FFmpeg input device (``v4l2`` camera, ``alsa``/``pulse`` microphone) as a PyAV container."""
    import av
    import av.error

    _check_device(fmt, name, what)
    label = _device_label(fmt, name)
    try:
        return av.open(name, format=fmt, options=options or {})
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(label, f"cannot open the {what}: {_reason(exc)}") from None


def open_stream(url: str, timeout: float = 10.0):
    """A network stream (or ``file:`` URL) as a PyAV container, with a clear error when it fails."""
    import av
    import av.error

    try:
        container = av.open(url, timeout=timeout)
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(url, f"cannot open the stream: {_reason(exc)}") from None
    from avemo.media._errors import audio_stream, video_stream

    if video_stream(container) is None and audio_stream(container) is None:
        container.close()
        raise MediaError(url, "has neither a video nor an audio track")
    return container


def _scaled(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(2, round(width * s)), max(2, round(height * s))


def container_items(container, name: str, *, max_side: int | None, clock: float | None = None) -> Iterator[Item]:
    """Decoded video (RGB) and audio (16 kHz mono) of a PyAV container in arrival order.

    Times come from the timestamps (from the first one), or with ``clock`` (a ``perf_counter`` origin,
    for devices) from the wall time of arrival. Closes the container at the end.
    """
    import av
    import av.error

    from avemo.media._errors import audio_stream, video_stream

    v, a = video_stream(container), audio_stream(container)
    streams = [s for s in (v, a) if s is not None]
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=SAMPLE_RATE) if a is not None else None
    origin: float | None = None
    samples = 0
    try:
        for packet in container.demux(streams):
            for frame in packet.decode():
                if clock is not None:
                    t = time.perf_counter() - clock
                else:
                    ft = frame.time if frame.time is not None else 0.0
                    origin = ft if origin is None else origin
                    t = max(0.0, ft - origin)
                if packet.stream is v:
                    w, h = _scaled(frame.width, frame.height, max_side)
                    yield "video", t, frame.reformat(width=w, height=h, format="rgb24").to_ndarray()
                else:
                    frame.pts = None
                    for out in resampler.resample(frame):
                        chunk = out.to_ndarray()[0].astype(np.float32, copy=False)
                        samples += chunk.size
                        yield "audio", (t if clock is not None else samples / SAMPLE_RATE), chunk
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(name, f"reading failed: {_reason(exc)}") from None
    finally:
        container.close()


def file_items(path: str | Path, *, video: bool, audio: bool, max_side: int | None) -> Iterator[Item]:
    """Every frame and consecutive audio pieces of a file, merged in media-time order (audio pieces
    at their end time)."""
    from avemo.media import iter_audio, iter_frames

    parts: list[Iterator[Item]] = []
    if video:
        parts.append(("video", f.time, f.image) for f in iter_frames(path, None, max_side=max_side))
    if audio:
        parts.append(_timed_audio(iter_audio(path, SAMPLE_RATE, chunk_seconds=_AUDIO_CHUNK_S)))
    return heapq.merge(*parts, key=lambda item: item[1])


def _timed_audio(chunks: Iterable[np.ndarray]) -> Iterator[Item]:
    n = 0
    for chunk in chunks:
        n += chunk.size
        yield "audio", n / SAMPLE_RATE, chunk


@dataclass
class LiveSource:
    """A source ready to play (once): one item iterator per producer thread.

    Items are ``("video", time, image)`` with an RGB uint8 ``H x W x 3`` image, or ``("audio", time,
    samples)`` with float32 16 kHz mono samples ending at ``time``; times in seconds, increasing.
    ``paced`` holds each item until its time falls due (files, streams); otherwise items count as
    captured when they arrive (devices, or any blocking iterator, e.g. frames from OpenCV).
    """

    name: str
    readers: list[Iterator[Item]]
    has_video: bool
    has_audio: bool
    paced: bool = False
    clock: list[float] = field(default_factory=lambda: [0.0])  # devices' time origin, set at start


def open_source(spec: SourceSpec, *, max_side: int | None = 720) -> LiveSource:
    """Open (and check) a source before any thread starts, so a bad source fails at once."""
    if spec.kind == "file":
        from avemo.media import probe

        info = probe(spec.target)
        if not info.has_video and not info.has_audio:
            raise MediaError(spec.target, "has neither a video nor an audio track")
        items = file_items(spec.target, video=info.has_video, audio=info.has_audio, max_side=max_side)
        return LiveSource(spec.target, [items], info.has_video, info.has_audio, paced=True)
    if spec.kind == "url":
        from avemo.media._errors import audio_stream, video_stream

        container = open_stream(spec.target)
        has_v, has_a = video_stream(container) is not None, audio_stream(container) is not None
        return LiveSource(spec.target, [container_items(container, spec.target, max_side=max_side)],
                            has_v, has_a, paced=True)
    cam = open_device("v4l2", spec.target, "webcam")
    clock = [0.0]
    readers = [_clocked(cam, spec.target, max_side, clock)]
    if spec.mic is not None:
        try:
            mic = open_device(spec.mic[0], spec.mic[1], "microphone")
        except MediaError:
            cam.close()
            raise
        readers.append(_clocked(mic, f"{spec.mic[0]}:{spec.mic[1]}", None, clock))
    return LiveSource(spec.target, readers, True, spec.mic is not None, paced=False, clock=clock)


def _clocked(container, name: str, max_side: int | None, clock: list[float]) -> Iterator[Item]:
    # the clock origin is only known when the threads start, hence the indirection
    yield from container_items(container, name, max_side=max_side, clock=clock[0])


# ---- hand-over between threads ---------------------------------------------------------------------
@dataclass
class _Frame:
    time: float
    image: np.ndarray
    wall: float


class _Inbox:
    """The latest frame (one slot, replaced when not taken in time) and the audio pieces not yet read."""

    def __init__(self, producers: int) -> None:
        self._cond = threading.Condition()
        self._frame: _Frame | None = None
        self._audio: list[tuple[float, np.ndarray, float]] = []
        self._running = producers
        self.frames = 0

    def put(self, kind: str, t: float, data: np.ndarray, wall: float) -> None:
        with self._cond:
            if kind == "video":
                self.frames += 1
                self._frame = _Frame(t, data, wall)
            else:
                self._audio.append((t, data, wall))
            self._cond.notify()

    def producer_done(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify()

    def wait(self, timeout: float) -> bool:
        """Wait for something new; False once every producer is done and nothing is left."""
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._audio or not self._running, timeout)
            return bool(self._frame is not None or self._audio or self._running)

    def take_audio(self) -> list[tuple[float, np.ndarray, float]]:
        with self._cond:
            out, self._audio = self._audio, []
            return out

    def take_frame(self) -> _Frame | None:
        with self._cond:
            out, self._frame = self._frame, None
            return out


class _Producer(threading.Thread):
    """Reads one source iterator; with ``speed`` it holds each item until its media time falls due."""

    def __init__(self, items: Iterator[Item], inbox: _Inbox, stop: threading.Event, speed: float | None) -> None:
        super().__init__(daemon=True, name="avemo-live-producer")
        self.items, self.inbox, self.stop, self.speed = items, inbox, stop, speed
        self.start_wall = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for kind, t, data in self.items:
                if self.stop.is_set():
                    break
                if self.speed:
                    wait = self.start_wall + t / self.speed - time.perf_counter()
                    if wait > 0 and self.stop.wait(wait):
                        break
                self.inbox.put(kind, t, data, time.perf_counter())
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            self.error = exc
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()
            self.inbox.producer_done()


# ---- events and summary ----------------------------------------------------------------------------
@dataclass(frozen=True)
class LiveEvent:
    """One emitted label. Probabilities are dicts over :data:`EMOTIONS` (None where absent);
    ``label``/``confidence`` come from ``smoothed`` (None when neither a face nor speech is there)."""

    time: float  #: media time, seconds
    label: str | None
    confidence: float | None
    source: str  #: "av", "face", "voice" or "none"
    face: dict[str, float] | None
    voice: dict[str, float] | None
    fused: dict[str, float] | None
    smoothed: dict[str, float] | None
    latency_ms: float  #: wall time from capture to emission
    speech_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LiveSummary:
    """What a live run did; ``latency_ms`` has ``median``, ``p95``, ``max`` and ``mean``."""

    source: str
    events: int
    labelled: int
    frames: int  #: frames the source delivered
    processed: int  #: frames run through the face path
    dropped: int  #: sampling instants missed because the consumer was busy
    voice_steps: int
    media_seconds: float
    wall_seconds: float
    speed: float
    latency_ms: dict[str, float]
    stage_ms: dict[str, float]  #: mean milliseconds per call of each stage
    label_share: dict[str, float]
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        lat = self.latency_ms
        lines = [f"{self.events} events ({self.labelled} labelled) over {self.media_seconds:.2f} s of media "
                 f"in {self.wall_seconds:.2f} s (speed {self.speed:g}x)"]
        if lat:
            lines.append(f"latency frame->label: median {lat['median']:.0f} ms, p95 {lat['p95']:.0f} ms, "
                         f"max {lat['max']:.0f} ms")
        lines.append(f"frames: {self.frames} delivered, {self.processed} analysed, {self.dropped} dropped; "
                     f"voice steps: {self.voice_steps}")
        if self.stage_ms:
            lines.append("stages (mean ms): " + ", ".join(f"{k} {v:.1f}" for k, v in self.stage_ms.items()))
        return "\n".join(lines)


def latency_stats(values: Iterable[float]) -> dict[str, float]:
    """median, p95, max and mean of latencies (empty dict for none)."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {}
    return {"median": round(float(np.median(arr)), 2), "p95": round(float(np.percentile(arr, 95)), 2),
            "max": round(float(arr.max()), 2), "mean": round(float(arr.mean()), 2), "n": int(arr.size)}


def _as_dict(p: np.ndarray | None) -> dict[str, float] | None:
    return None if p is None else {name: round(float(v), 5) for name, v in zip(EMOTIONS, p)}


# ---- the analyzer ----------------------------------------------------------------------------------
class LiveAnalyzer:
    """Loads the models once; :meth:`run` then plays any number of sources.

    Args:
        models: ``"default"`` or a dict overriding ``face``, ``voice`` and ``fusion`` bundle names.
        fps: face sampling rate (frames per second of media time).
        hop: seconds of audio between voice steps.
        smooth: time constant of the moving average, seconds (0: no smoothing).
        window: seconds of audio the voice model sees.
        min_speech: share of the window VAD must call speech for the voice to count.
        detect_side / decode_side: MediaPipe's input size and the decoded frame size (longer side).
        threads: the networks' threads (torch's intra-op count, which the onnxruntime sessions
            follow) while the analyzer loads and runs; restored after. One is fastest for these
            batch-of-one calls: on the 2 loaded cores the face network took 6-7 ms per frame with
            one thread and 15-26 ms with two (onnxruntime; eager torch: 20 ms and 300-1500 ms), as
            the producer thread and MediaPipe need the other core.
        backend: ``"onnx"`` (onnxruntime) or ``"torch"`` for the face and voice networks.
        face_tta: the face network's test-time views (None: the bundle's own; ``face.fer2013``
            uses ``"flip"``, two passes per frame; ``"tencrop"`` is ten, ``"none"`` one).
    """

    def __init__(self, models: str | dict[str, str] = "default", *, fps: float = 5.0, hop: float = 1.0,
                 smooth: float = 1.0, window: float = 3.0, min_speech: float = 0.25,
                 detect_side: int = 320, decode_side: int = 720, threads: int | None = 1,
                 backend: str = "onnx", face_tta: str | None = None) -> None:
        for name, value in (("fps", fps), ("hop", hop), ("window", window)):
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth!r}")
        names = dict(DEFAULT_MODELS) if models == "default" else {**DEFAULT_MODELS, **dict(models)}
        self.model_names = names
        self.fps, self.hop, self.smooth, self.window = float(fps), float(hop), float(smooth), float(window)
        self.min_speech, self.detect_side, self.decode_side = min_speech, detect_side, decode_side
        self.threads = threads
        with _torch_threads(threads):  # onnxruntime sessions take their thread count from torch's
            self.face_model = FacePredictor(names["face"], backend=backend, tta=face_tta)
            self.voice_model = VoicePredictor(names["voice"], backend=backend)
        self.fusion = load_fusion(names["fusion"])
        self._warm = False

    def _warm_up(self) -> None:
        """First calls are slow (lazy initialisation); pay that before the clock starts."""
        if self._warm:
            return
        size = self.face_model.crop_size
        for _ in range(3):
            self.face_model.predict(np.zeros((1, size, size), np.uint8))
            self.voice_model.predict(np.zeros((1, int(self.window * SAMPLE_RATE)), np.float32))
        self._warm = True

    def run(self, source: str | Path | LiveSource, on_event: Callable[[LiveEvent], None] | None = None,
            duration: float | None = None, *, mic: str | None = None, speed: float = 1.0) -> LiveSummary:
        """Play ``source`` (see :func:`parse_source`, or a :class:`LiveSource`), call ``on_event`` for
        every label, and return a :class:`LiveSummary`. Stops at the end of the source, after
        ``duration`` s of media time, or on Ctrl-C (``interrupted``). ``speed`` > 1 plays files and
        streams faster than real time."""
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive number, got {speed!r}")
        if isinstance(source, LiveSource):
            opened = source
        else:
            opened = open_source(parse_source(source, mic), max_side=self.decode_side)
        session = None
        with _torch_threads(self.threads):
            try:
                self._warm_up()
                session = _Session(self, opened, on_event)
                session.warm_up()
                return session.play(duration, speed if opened.paced else None)
            finally:
                if session is not None:
                    session.close()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block (unchanged for None)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Session:
    """The consumer's state during one run."""

    def __init__(self, owner: LiveAnalyzer, opened: LiveSource, on_event: Callable[[LiveEvent], None] | None):
        from avemo.audio import VoiceActivityDetector
        from avemo.faces import FaceScanner

        self.a, self.opened, self.on_event = owner, opened, on_event
        self.scanner = FaceScanner(mode="video", size=owner.face_model.crop_size, grey=True,
                                   max_side=owner.detect_side) if opened.has_video else None
        self.vad = VoiceActivityDetector() if opened.has_audio else None
        self.period = 1.0 / owner.fps
        self.face_labels = tuple(owner.face_model.model.labels)  # the fusion treats absent classes itself
        self.window_n = int(round(owner.window * SAMPLE_RATE))
        self.audio = np.zeros(0, np.float32)
        self.audio_end = 0.0  # media time at the end of the audio buffer
        self.audio_wall = 0.0  # capture time of the newest audio piece
        self.next_voice = owner.hop
        self.voice_at = -1.0  # audio_end of the last voice step
        self.voice: np.ndarray | None = None
        self.speech: float | None = None
        self.last_cell: int | None = None
        self.face_time = -math.inf  # media time of the last frame analysed
        self.event_time = -math.inf  # media time of the last event
        self.ema: np.ndarray | None = None
        self.ema_time = 0.0
        self.media_time = 0.0
        self.latencies: list[float] = []
        self.stages: dict[str, list[float]] = {}  # stage -> [total ms, calls]
        self.labels: dict[str, int] = {}
        self.events = self.labelled = self.processed = self.dropped = self.voice_steps = 0

    def warm_up(self) -> None:
        if self.scanner is not None:  # MediaPipe builds its graph on the first frame
            self.scanner.process(np.zeros((240, 320, 3), np.uint8), time=0.0, index=0)
            self.scanner.reset()
        if self.vad is not None:
            self.vad.probabilities(np.zeros(2048, np.float32), SAMPLE_RATE)

    def close(self) -> None:
        if self.scanner is not None:
            self.scanner.close()

    def _timed(self, stage: str, t0: float) -> None:
        total = self.stages.setdefault(stage, [0.0, 0])
        total[0] += (time.perf_counter() - t0) * 1000.0
        total[1] += 1

    # ---- the loop --------------------------------------------------------------------------------
    def play(self, duration: float | None, speed: float | None) -> LiveSummary:
        inbox = _Inbox(len(self.opened.readers))
        stop = threading.Event()
        producers = [_Producer(r, inbox, stop, speed) for r in self.opened.readers]
        start = time.perf_counter() + 0.02
        self.opened.clock[0] = start
        for p in producers:
            p.start_wall = start
            p.start()
        interrupted = False
        try:
            while inbox.wait(timeout=0.1):
                for t, chunk, wall in inbox.take_audio():
                    self._add_audio(t, chunk, wall)
                if self.audio_end >= self.next_voice - _EPS:
                    self._voice_step()
                frame = inbox.take_frame()  # after the voice step: the freshest frame
                if frame is not None:
                    self.media_time = max(self.media_time, frame.time)
                    self._face_step(frame)
                if duration is not None and self.media_time >= duration:
                    break
                if any(p.error is not None for p in producers):
                    break
            else:
                if self.audio_end > self.voice_at + 0.25:  # the tail since the last hop
                    self._voice_step()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stop.set()
            for p in producers:
                p.join(timeout=2.0)
        for p in producers:
            if p.error is not None:
                raise p.error
        wall = time.perf_counter() - start
        return self._summary(inbox, wall, speed or 1.0, interrupted)

    def _add_audio(self, t: float, chunk: np.ndarray, wall: float) -> None:
        self.audio = np.concatenate([self.audio, chunk])[-self.window_n:]
        self.audio_end, self.audio_wall = t, wall
        self.media_time = max(self.media_time, t)

    def _voice_step(self) -> None:
        from avemo.audio import Window, frame_windows, segments_from_probs, speech_fraction

        a = self.a
        self.voice_at = self.audio_end
        self.next_voice = (math.floor(self.audio_end / a.hop + _EPS) + 1) * a.hop
        if self.audio.size == 0:
            return
        t0 = time.perf_counter()
        seconds = self.audio.size / SAMPLE_RATE
        segs = segments_from_probs(self.vad.probabilities(self.audio, SAMPLE_RATE), n_samples=self.audio.size)
        self.speech = speech_fraction(segs, 0.0, seconds)
        self._timed("vad", t0)
        self.voice_steps += 1
        self.voice = None
        if self.speech >= a.min_speech:
            t0 = time.perf_counter()
            chunk = frame_windows(self.audio, SAMPLE_RATE, [Window(0.0, seconds)], window_s=a.window)
            self.voice = a.voice_model.predict(chunk)[0]
            self._timed("voice model", t0)
        if self.face_time < self.audio_end - self.a.hop:  # no frames (any more): the voice speaks alone
            self._emit(self.audio_end, None, self.audio_wall)

    def _face_step(self, frame: _Frame) -> None:
        cell = math.floor(frame.time / self.period + _EPS)
        if self.last_cell is not None and cell <= self.last_cell or frame.time <= self.event_time:
            return  # between two sampling instants (not needed), or older than an emitted voice event
        if self.last_cell is not None:
            self.dropped += cell - self.last_cell - 1
        self.last_cell = cell
        self.face_time = frame.time
        t0 = time.perf_counter()
        ff = self.scanner.process(frame.image, time=frame.time, index=self.processed)
        self._timed("faces", t0)
        self.processed += 1
        face = None
        crop = ff.main_crop
        if crop is not None:
            t0 = time.perf_counter()
            face = self.a.face_model.predict(crop[None])[0]
            self._timed("face model", t0)
        self._emit(frame.time, face, frame.wall)

    def _emit(self, t: float, face: np.ndarray | None, captured: float) -> None:
        nan = np.full((1, len(EMOTIONS)), np.nan, np.float32)
        voice = self.voice
        fused = self.a.fusion.fuse({"face": nan if face is None else face[None],
                                    "voice": nan if voice is None else voice[None]}, self.face_labels)[0]
        present = not np.isnan(fused).any()
        label = confidence = None
        if present:
            fused = fused / fused.sum()
            if self.ema is None or self.a.smooth <= 0:
                self.ema = fused.astype(np.float64)
            else:
                alpha = 1.0 - math.exp(-max(t - self.ema_time, 0.0) / self.a.smooth)
                self.ema = self.ema + alpha * (fused - self.ema)
            self.ema_time = t
            k = int(self.ema.argmax())
            label, confidence = EMOTIONS[k], round(float(self.ema[k]), 5)
        source = {(True, True): "av", (True, False): "face", (False, True): "voice"}.get(
            (face is not None, voice is not None), "none")
        latency = (time.perf_counter() - captured) * 1000.0
        event = LiveEvent(time=round(float(t), 4), label=label, confidence=confidence, source=source,
                          face=_as_dict(face), voice=_as_dict(voice), fused=_as_dict(fused) if present else None,
                          smoothed=_as_dict(self.ema) if present else None, latency_ms=round(latency, 2),
                          speech_fraction=None if self.speech is None else round(self.speech, 3))
        self.latencies.append(latency)
        self.event_time = t
        self.events += 1
        if label is not None:
            self.labelled += 1
            self.labels[label] = self.labels.get(label, 0) + 1
        if self.on_event is not None:
            self.on_event(event)

    def _summary(self, inbox: _Inbox, wall: float, speed: float, interrupted: bool) -> LiveSummary:
        total = max(1, self.labelled)
        return LiveSummary(
            source=self.opened.name, events=self.events, labelled=self.labelled, frames=inbox.frames,
            processed=self.processed, dropped=self.dropped, voice_steps=self.voice_steps,
            media_seconds=round(self.media_time, 3), wall_seconds=round(wall, 3), speed=speed,
            latency_ms=latency_stats(self.latencies),
            stage_ms={k: round(ms / n, 2) for k, (ms, n) in self.stages.items()},
            label_share={k: round(v / total, 4) for k, v in sorted(self.labels.items(), key=lambda kv: -kv[1])},
            interrupted=interrupted)
