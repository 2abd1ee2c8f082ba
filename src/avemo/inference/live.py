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

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.errors import AvemoError
from avemo.inference.events import LiveEvent, LiveSummary, as_dict, latency_stats
from avemo.inference.predictors import DEFAULT_MODELS, FacePredictor, Fusion, VoicePredictor
from avemo.labels import EMOTIONS
from avemo.media.live import Item, LiveSource, open_source, parse_source

_EPS = 1e-6


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
        threads: the networks' onnxruntime threads. One is fastest for these
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
                raise AvemoError(f"live setting {name} must be a positive number, got {value!r}")
        if smooth < 0:
            raise AvemoError(f"live setting smooth must be >= 0, got {smooth!r}")
        names = dict(DEFAULT_MODELS) if models == "default" else {**DEFAULT_MODELS, **dict(models)}
        self.model_names = names
        self.fps, self.hop, self.smooth, self.window = float(fps), float(hop), float(smooth), float(window)
        self.min_speech, self.detect_side, self.decode_side = min_speech, detect_side, decode_side
        self.threads = threads
        self.face_model = FacePredictor(names["face"], backend=backend, tta=face_tta, threads=threads)
        self.voice_model = VoicePredictor(names["voice"], backend=backend, threads=threads)
        self.sample_rate = self.voice_model.sample_rate
        self.fusion = Fusion(names["fusion"])
        self._warm = False

    def _warm_up(self) -> None:
        """First calls are slow (lazy initialisation); pay that before the clock starts."""
        if self._warm:
            return
        size = self.face_model.crop_size
        for _ in range(3):
            self.face_model.predict(np.zeros((1, size, size), np.uint8))
            self.voice_model.predict(np.zeros((1, int(self.window * self.sample_rate)), np.float32))
        self._warm = True

    def run(self, source: str | Path | LiveSource, on_event: Callable[[LiveEvent], None] | None = None,
            duration: float | None = None, *, mic: str | None = None, speed: float = 1.0) -> LiveSummary:
        """Play ``source`` (see :func:`parse_source`, or a :class:`LiveSource`), call ``on_event`` for
        every label, and return a :class:`LiveSummary`. Stops at the end of the source, after
        ``duration`` s of media time, or on Ctrl-C (``interrupted``). ``speed`` > 1 plays files and
        streams faster than real time."""
        if not (speed > 0 and math.isfinite(speed)):
            raise AvemoError(f"live setting speed must be a positive number, got {speed!r}")
        if isinstance(source, LiveSource):
            opened = source
        else:
            opened = open_source(parse_source(source, mic), max_side=self.decode_side, sample_rate=self.sample_rate)
        session = None
        try:
            self._warm_up()
            session = _Session(self, opened, on_event)
            session.warm_up()
            return session.play(duration, speed if opened.paced else None)
        finally:
            if session is not None:
                session.close()


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
        self.face_labels = owner.face_model.labels  # the fusion treats absent classes itself
        self.sample_rate = owner.sample_rate
        self.window_n = int(round(owner.window * self.sample_rate))
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
            self.vad.probabilities(np.zeros(2048, np.float32), self.sample_rate)

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
        from avemo.audio import Window, segments_from_probs, speech_fraction

        a = self.a
        self.voice_at = self.audio_end
        self.next_voice = (math.floor(self.audio_end / a.hop + _EPS) + 1) * a.hop
        if self.audio.size == 0:
            return
        t0 = time.perf_counter()
        seconds = self.audio.size / self.sample_rate
        segs = segments_from_probs(self.vad.probabilities(self.audio, self.sample_rate), n_samples=self.audio.size)
        self.speech = speech_fraction(segs, 0.0, seconds)
        self._timed("vad", t0)
        self.voice_steps += 1
        self.voice = None
        if self.speech >= a.min_speech:
            t0 = time.perf_counter()
            self.voice = a.voice_model.predict_windows(self.audio, [Window(0.0, seconds)])[0]
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
            face = self.a.face_model.predict(crop[None], self.a.face_model.features([ff.main]))[0]
            self._timed("face model", t0)
        self._emit(frame.time, face, frame.wall)

    def _emit(self, t: float, face: np.ndarray | None, captured: float) -> None:
        nan = np.full((1, len(EMOTIONS)), np.nan, np.float32)
        voice = self.voice
        details = self.a.fusion.fuse_details({"face": nan if face is None else face[None],
                                              "voice": nan if voice is None else voice[None]},
                                             {"face": self.face_labels})
        fused = details.fused[0]
        present = not np.isnan(fused).any()
        weights = {m: round(float(w), 4) for m, w in zip(details.modalities, details.weights[0])
                   if m in ("face", "voice")} if present else None
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
                          face=as_dict(face), voice=as_dict(voice), fused=as_dict(fused) if present else None,
                          smoothed=as_dict(self.ema) if present else None, latency_ms=round(latency, 2),
                          speech_fraction=None if self.speech is None else round(self.speech, 3),
                          weights=weights,
                          uncertain=None if confidence is None else confidence < self.a.fusion.UNCERTAIN_BELOW)
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
