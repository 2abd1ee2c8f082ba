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
- Face and voice probabilities (and with ``text`` the latest utterance's words) are fused by the fusion bundle
  (as in the offline analyzer) and smoothed with an exponential moving average of time constant ``smooth`` s
  (media time).

Latency (budget: 300 ms from a frame to its label): ``avemo bench live`` (BENCHMARKS.md, *Live*) plays the speed
benchmark's 12 s 720p talking-face video in real time with the shipped bundles. On the 2-core development
machine (AMD EPYC), 3 rounds (stop 32, commit 8d814e1): median 17 ms, p95 44 ms, max 50 ms, no frame dropped; per
call MediaPipe + alignment 10.6 ms, the face network 6.3 ms, VAD over 3 s 4.6 ms, the voice model 26.7 ms. One
network thread (``threads=1``) matters: with two, the face network took 2-4x longer per frame on a loaded machine (see
:class:`LiveAnalyzer`).

With ``text`` each utterance (speech up to a pause of ``pause`` s, or ``max_utterance`` s at most) goes to a
thread of its own that transcribes it (Whisper base, the offline ``--text`` model, without word times: the
utterance is scored whole) and scores its words with the text bundle; the words then ride on the events of the
next ``window`` s and join the fusion as offline (the text sits out unless its words state a feeling). Same
bench: 0.19 s of transcription per utterance (about 3.5 s of speech) beside the frames, whose latency became
median 17 ms, p95 49 ms, max 53 ms (the worst event of three rounds 87 ms), no frame dropped.

With ``all_faces`` up to :data:`~avemo.faces.scan.MAX_TRACKED_FACES` faces a frame go through the face network in
one batch, each with its own moving average by track (the event's ``faces``); the fused answer stays the main face's
with the voice. Same bench, two people side by side: median 30 ms, p95 59 ms, max 64 ms (MediaPipe 18.8 ms, the
face network 11.0 ms for both faces), no frame dropped.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import AvemoError
from avemo.inference.events import LiveEvent, LiveSummary, as_dict, latency_stats
from avemo.inference.predictors import DEFAULT_MODELS, FacePredictor, Fusion, VoicePredictor
from avemo.labels import EMOTIONS
from avemo.media.live import Item, LiveSource, open_source, parse_source

_EPS = 1e-6
_TRACK_MEMORY_S = 30.0  #: a face track unseen this long is forgotten (its moving average)


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


@dataclass
class _Words:
    """One transcribed utterance: media times, its words, their emotions (projected on EMOTIONS, or None where
    the text model does not serve its language) and how many words state a feeling (the fusion's gate)."""
    start: float
    end: float
    transcript: str
    probs: np.ndarray | None
    emotion_words: float
    ms: float


class _TextWorker(threading.Thread):
    """Transcribes finished utterances beside the live loop (Whisper takes 0.2-1 s of CPU per utterance, which
    the frames must not wait for); at most ``backlog`` utterances wait, the oldest dropped beyond that."""

    def __init__(self, model: Any, sample_rate: int, backlog: int = 2) -> None:  # model: a WindowText
        super().__init__(daemon=True, name="avemo-live-text")
        self.model, self.sample_rate = model, sample_rate
        self.jobs: queue.Queue[tuple[float, float, np.ndarray] | None] = queue.Queue()
        self.backlog = backlog
        self.lock = threading.Lock()
        self.done: list[_Words] = []
        self.submitted = self.dropped = 0
        self.error: BaseException | None = None

    def submit(self, start: float, end: float, wave: np.ndarray) -> None:
        while self.jobs.qsize() >= self.backlog:
            try:
                self.jobs.get_nowait()
                self.dropped += 1
            except queue.Empty:
                break
        self.submitted += 1
        self.jobs.put((start, end, wave))

    def take(self) -> list[_Words]:
        with self.lock:
            out, self.done = self.done, []
            return out

    def finish(self, timeout: float) -> None:
        """Transcribe what is queued (up to ``timeout`` s), then end."""
        self.jobs.put(None)
        self.join(timeout)

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            start, end, wave = job
            t0 = time.perf_counter()
            try:
                sentence, probs, emotion_words = self.model.utterance(wave)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
                self.error = exc
                return
            words = _Words(start, end, sentence, probs, emotion_words, (time.perf_counter() - t0) * 1000.0)
            with self.lock:
                self.done.append(words)


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
        text: also transcribe each utterance (Whisper base, offline, in a thread of its own) and fuse its words'
            emotions as the offline ``--text`` analysis does; an utterance ends at a pause of ``pause`` s or
            after ``max_utterance`` s, and its words count for events up to ``window`` s after it (the default
            of :meth:`run`, which can turn it on or off per run).
        language: with ``text``, the speech's language (a Whisper code); None: detected per utterance.
        all_faces: follow up to 4 faces: each event's ``faces`` lists every face in the frame (its track, box,
            probabilities and smoothed label); the event's own face columns stay the main face's (the default
            of :meth:`run`, which can turn it on or off per run).
    """

    def __init__(self, models: str | dict[str, str] = "default", *, fps: float = 5.0, hop: float = 1.0,
                 smooth: float = 1.0, window: float = 3.0, min_speech: float = 0.25,
                 detect_side: int = 320, decode_side: int = 720, threads: int | None = 1,
                 backend: str = "onnx", face_tta: str | None = None, text: bool = False,
                 language: str | None = None, pause: float = 0.5, max_utterance: float = 10.0,
                 all_faces: bool = False) -> None:
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
        self.pause, self.max_utterance = float(pause), float(max_utterance)
        if language is not None and not text:
            raise AvemoError("live setting language applies to text (the transcript's language)")
        self.text, self.language, self.all_faces = text, language, bool(all_faces)
        self._text_models: dict[str | None, Any] = {}
        self._text_lock = threading.Lock()
        self._text_warm = False
        if text:
            self.text_model(language)  # loaded now: an unknown language fails before any source opens
        self._warm = False

    def text_model(self, language: str | None = None) -> Any:
        """The transcriber + text bundle (:class:`avemo.text.windows.WindowText`) for speech in ``language``
        (None: detected), loaded on first use and shared by runs."""
        with self._text_lock:
            if language not in self._text_models:
                from avemo.text.windows import WindowText

                try:
                    if not self._text_models:
                        model = WindowText(self.model_names.get("text", "text.carer"), threads=1,
                                           language=language, word_times=False)  # an utterance is scored whole
                    else:
                        model = next(iter(self._text_models.values())).with_language(language)
                except ValueError as err:  # an unknown language code
                    raise AvemoError(f"live setting language: {err}") from None
                self._text_models[language] = model
            return self._text_models[language]

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
            duration: float | None = None, *, mic: str | None = None, speed: float = 1.0,
            text: bool | None = None, language: str | None = None, all_faces: bool | None = None) -> LiveSummary:
        """Play ``source`` (see :func:`parse_source`, or a :class:`LiveSource`), call ``on_event`` for
        every label, and return a :class:`LiveSummary`. Stops at the end of the source, after
        ``duration`` s of media time, or on Ctrl-C (``interrupted``). ``speed`` > 1 plays files and
        streams faster than real time. ``text`` / ``language`` / ``all_faces``: this run's (default: the
        analyzer's)."""
        if not (speed > 0 and math.isfinite(speed)):
            raise AvemoError(f"live setting speed must be a positive number, got {speed!r}")
        text = self.text if text is None else text
        if language is not None and not text:
            raise AvemoError("live setting language applies to text (the transcript's language)")
        text_model = self.text_model(language if language is not None else self.language) if text else None
        if text_model is not None and not self._text_warm:  # the encoder's first call builds its kernels
            text_model.utterance(np.zeros(self.sample_rate, np.float32))
            self._text_warm = True
        if isinstance(source, LiveSource):
            opened = source
        else:
            opened = open_source(parse_source(source, mic), max_side=self.decode_side, sample_rate=self.sample_rate)
        session = None
        try:
            self._warm_up()
            session = _Session(self, opened, on_event, text_model,
                               self.all_faces if all_faces is None else bool(all_faces))
            session.warm_up()
            return session.play(duration, speed if opened.paced else None)
        finally:
            if session is not None:
                session.close()


class _Session:
    """The consumer's state during one run."""

    def __init__(self, owner: LiveAnalyzer, opened: LiveSource, on_event: Callable[[LiveEvent], None] | None,
                 text_model: Any = None, all_faces: bool = False):
        from avemo.audio import VoiceActivityDetector
        from avemo.faces import MAX_TRACKED_FACES, FaceScanner

        self.a, self.opened, self.on_event = owner, opened, on_event
        self.all_faces = all_faces
        self.scanner = FaceScanner(mode="video", size=owner.face_model.crop_size, grey=True,
                                   max_side=owner.detect_side, max_faces=MAX_TRACKED_FACES if all_faces else 1,
                                   ) if opened.has_video else None
        self.last_faces: list[dict[str, Any]] | None = None  # with all_faces: every face of the last frame
        self.track_ema: dict[int, tuple[np.ndarray, float]] = {}  # track -> smoothed face probabilities, time
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
        self.last_face: np.ndarray | None = None  # its face probabilities
        self.event_time = -math.inf  # media time of the last event
        self.ema: np.ndarray | None = None
        self.ema_time = 0.0
        self.media_time = 0.0
        self.latencies: list[float] = []
        self.stages: dict[str, list[float]] = {}  # stage -> [total ms, calls]
        self.labels: dict[str, int] = {}
        self.events = self.labelled = self.processed = self.dropped = self.voice_steps = 0
        self.texts = _TextWorker(text_model, self.sample_rate) if text_model is not None and opened.has_audio else None
        self.text_audio = np.zeros(0, np.float32)  # audio not yet sent to the transcriber, ending at audio_end
        self.text_heard = False  # whether it holds speech
        self.words: _Words | None = None  # the latest transcribed utterance
        self.text_labels = text_model.bundle.labels if text_model is not None else None

    def warm_up(self) -> None:
        if self.scanner is not None:  # MediaPipe builds its graph on the first frame
            self.scanner.process(np.zeros((240, 320, 3), np.uint8), time=0.0, index=0)
            self.scanner.reset()
        if self.vad is not None:
            self.vad.probabilities(np.zeros(2048, np.float32), self.sample_rate)

    def close(self) -> None:
        if self.scanner is not None:
            self.scanner.close()
        if self.texts is not None and self.texts.is_alive():
            self.texts.finish(timeout=0.0)

    def _timed(self, stage: str, t0: float) -> None:
        self._timed_ms(stage, (time.perf_counter() - t0) * 1000.0)

    def _timed_ms(self, stage: str, ms: float) -> None:
        total = self.stages.setdefault(stage, [0.0, 0])
        total[0] += ms
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
        if self.texts is not None:
            self.texts.start()
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
                self._text_arrived()
                if duration is not None and self.media_time >= duration:
                    break
                if any(p.error is not None for p in producers):
                    break
            else:
                if self.audio_end > self.voice_at + 0.25:  # the tail since the last hop
                    self._voice_step()
                if self.texts is not None:  # the last utterance's words, once transcribed
                    self._send_text(self.audio_end, ended=True)
                    self.texts.finish(timeout=60.0)
                    self._text_arrived()
        except KeyboardInterrupt:
            interrupted = True
        finally:
            stop.set()
            for p in producers:
                p.join(timeout=2.0)
        for p in producers:
            if p.error is not None:
                raise p.error
        if self.texts is not None and self.texts.error is not None:
            raise self.texts.error
        wall = time.perf_counter() - start
        return self._summary(inbox, wall, speed or 1.0, interrupted)

    def _add_audio(self, t: float, chunk: np.ndarray, wall: float) -> None:
        self.audio = np.concatenate([self.audio, chunk])[-self.window_n:]
        self.audio_end, self.audio_wall = t, wall
        self.media_time = max(self.media_time, t)
        if self.texts is not None:  # bounded: an utterance is sent after max_utterance s at the latest
            keep = int((self.a.max_utterance + 2 * self.a.hop + self.a.window) * self.sample_rate)
            self.text_audio = np.concatenate([self.text_audio, chunk])[-keep:]

    def _text_step(self, segs: list, seconds: float) -> None:
        """After a voice step's VAD (``segs``, seconds into the last ``seconds`` of audio): send the utterance
        to the transcriber when the speech has paused for ``pause`` s or has gone on for ``max_utterance`` s."""
        a, end = self.a, self.audio_end
        last = end - seconds + segs[-1].end if segs else None
        if not segs and not self.text_heard:  # silence: keep one window, where an utterance may be starting
            self.text_audio = self.text_audio[-self.window_n:]
            return
        if not self.text_heard:  # an utterance starts: the silence before it is not transcribed
            onset = end - seconds + segs[0].start - a.pause / 2
            drop = int((onset - (end - self.text_audio.size / self.sample_rate)) * self.sample_rate)
            self.text_audio = self.text_audio[max(drop, 0):]
            self.text_heard = True
        length = self.text_audio.size / self.sample_rate
        if last is None or end - last >= a.pause:
            self._send_text(end if last is None else min(end, last + a.pause / 2), ended=True)
        elif length >= a.max_utterance:
            self._send_text(end, ended=False)

    def _send_text(self, cut: float, ended: bool) -> None:
        """Send the held audio up to media time ``cut`` to the transcriber (if it holds speech)."""
        assert self.texts is not None
        start = self.audio_end - self.text_audio.size / self.sample_rate
        n = int(round((cut - start) * self.sample_rate))
        if self.text_heard and n >= self.sample_rate // 4:
            self.texts.submit(start, cut, self.text_audio[:n].copy())
        self.text_audio = self.text_audio[max(n, 0):]
        self.text_heard = not ended

    def _text_arrived(self) -> None:
        """Take the transcriber's finished utterances; a new one is shown at once (an event now)."""
        if self.texts is None:
            return
        if self.texts.error is not None:  # the transcriber failed: the run stops with its error
            raise self.texts.error
        done = self.texts.take()
        if not done:
            return
        for words in done:
            self._timed_ms("text", words.ms)
        self.words = done[-1]
        t = max(self.media_time, self.audio_end, self.event_time + 0.001)  # events go forward in media time
        face = self.last_face if self.face_time >= t - self.a.hop else None
        self._emit(t, face, time.perf_counter())

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
        if self.texts is not None:
            self._text_step(segs, seconds)
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
        if self.all_faces:
            face = self._every_face(ff)
        elif (crop := ff.main_crop) is not None:
            t0 = time.perf_counter()
            face = self.a.face_model.predict(crop[None], self.a.face_model.features([ff.main]))[0]
            self._timed("face model", t0)
        self.last_face = face
        self._emit(frame.time, face, frame.wall)

    def _every_face(self, ff: Any) -> np.ndarray | None:
        """All faces of a frame through the face network in one batch, into :attr:`last_faces` (each with its
        own moving average, by track); returns the main face's probabilities."""
        faces, main = list(ff.faces), ff.main
        self.last_faces = []
        if not faces:
            return None
        t0 = time.perf_counter()
        probs = self.a.face_model.predict(np.stack(ff.crops), self.a.face_model.features(faces))
        self._timed("face model", t0)
        h, w = ff.size
        for face, p in sorted(zip(faces, probs), key=lambda fp: (fp[0].track_id is None, fp[0].track_id or 0)):
            smoothed = np.nan_to_num(p.astype(np.float64))
            if face.track_id is not None:
                before = self.track_ema.get(int(face.track_id))
                if before is not None and self.a.smooth > 0:
                    alpha = 1.0 - math.exp(-max(ff.time - before[1], 0.0) / self.a.smooth)
                    smoothed = before[0] + alpha * (smoothed - before[0])
                self.track_ema[int(face.track_id)] = (smoothed, ff.time)
            k = int(smoothed.argmax())
            x0, y0, x1, y1 = face.box
            self.last_faces.append({
                "track": None if face.track_id is None else int(face.track_id), "main": face is main,
                "box": [round(min(max(v / d, 0.0), 1.0), 4) for v, d in ((x0, w), (y0, h), (x1, w), (y1, h))],
                "label": EMOTIONS[k], "confidence": round(float(smoothed[k]), 5), "face": as_dict(p)})
        self.track_ema = {t: v for t, v in self.track_ema.items() if v[1] >= ff.time - _TRACK_MEMORY_S}
        return probs[faces.index(main)] if main is not None else None

    def _emit(self, t: float, face: np.ndarray | None, captured: float) -> None:
        nan = np.full((1, len(EMOTIONS)), np.nan, np.float32)
        voice = self.voice
        words = self.words if self.words is not None and self.words.end >= t - self.a.window else None
        text = words.probs if words is not None else None
        probs = {"face": nan if face is None else face[None], "voice": nan if voice is None else voice[None]}
        labels = {"face": self.face_labels}
        evidence = None
        if self.texts is not None:
            probs["text"] = nan if text is None else text[None]
            labels["text"] = self.text_labels
            evidence = self.a.fusion.evidence_from(
                {"text_emotion_words": np.array([np.nan if words is None else words.emotion_words])}, 1)
        details = self.a.fusion.fuse_details(probs, labels, evidence)
        fused = details.fused[0]
        present = not np.isnan(fused).any()
        weights = {m: round(float(w), 4) for m, w in zip(details.modalities, details.weights[0])
                   if m in probs} if present else None
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
            (face is not None, voice is not None), "text" if text is not None else "none")
        latency = (time.perf_counter() - captured) * 1000.0
        event = LiveEvent(time=round(float(t), 4), label=label, confidence=confidence, source=source,
                          face=as_dict(face), voice=as_dict(voice), fused=as_dict(fused) if present else None,
                          smoothed=as_dict(self.ema) if present else None, latency_ms=round(latency, 2),
                          speech_fraction=None if self.speech is None else round(self.speech, 3),
                          weights=weights,
                          uncertain=None if confidence is None else confidence < self.a.fusion.UNCERTAIN_BELOW,
                          text=as_dict(text), transcript=None if words is None else words.transcript,
                          text_emotion_words=None if words is None or not math.isfinite(words.emotion_words)
                          else int(words.emotion_words),  # NaN: the utterance had no words
                          faces=((self.last_faces or []) if face is not None else []) if self.all_faces else None)
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
            interrupted=interrupted,
            utterances=None if self.texts is None else self.texts.submitted,
            utterances_dropped=None if self.texts is None else self.texts.dropped)
