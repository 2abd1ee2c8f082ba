"""The analyzer: a video, audio file or image in, an :class:`EmotionTimeline` out.

Data flow (the face and voice paths run side by side in two threads)::

    file ─ probe ─┬─ frames @fps ─ FaceScanner (MediaPipe, track, align) ─ face model ─┐
                  └─ audio 16 kHz ─ Silero VAD ─ windows with speech ─ voice model ─────┴─ windows ─ fusion

A window has a face when a face was found in any of its sampled frames (its face probabilities are
the mean over those frames), and speech when VAD marks at least ``min_speech`` of it as speech.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from avemo import __version__
from avemo.errors import AvemoError, MediaError
from avemo.inference.predictors import DEFAULT_MODELS, FacePredictor, Fusion, VoicePredictor
from avemo.inference.result import EmotionTimeline, evidence_columns, prob_columns
from avemo.labels import EMOTIONS


@dataclass(frozen=True)
class AnalyzerConfig:
    """Every setting of an analysis (stored in the result's metadata)."""

    window: float = 3.0  #: window length, seconds
    hop: float = 1.0  #: step between window starts, seconds
    fps: float = 5.0  #: face sampling rate, frames per second
    detect_side: int = 320  #: longer side of the image MediaPipe sees
    decode_side: int = 640  #: longer side frames are decoded at (crops are cut from these)
    skip_nonref: bool = True  #: let the decoder drop B-frames (a third faster; sampling stays within a frame)
    #: let the decoder skip its deblocking filter (H.264 / HEVC: about a fifth less decoding CPU; pixels move by
    #: about half a level; what it changes in the face probabilities: BENCHMARKS.md, benchmarks/face_path.py)
    skip_loop_filter: bool = True
    #: run MediaPipe on one sampled frame in k, carrying its faces to the next k-1 by optical flow
    #: (k=2 halves MediaPipe's cost; effect on the face probabilities in BENCHMARKS.md; 1: exact)
    landmark_every: int = 2
    min_speech: float = 0.25  #: share of a window VAD must call speech for the voice to count
    all_faces: bool = False  #: rows for every tracked face (a ``track`` column) instead of the main face only
    max_faces: int = 1  #: most faces detected per frame (raised to 4 by ``all_faces``)
    backend: str = "onnx"  #: run the networks with ``"onnx"`` (onnxruntime) or ``"torch"``
    audio_chunk: float = 20.0  #: seconds of audio decoded at a time (memory is flat in file length)
    model_threads: int | None = 1  #: onnxruntime threads per network (None: torch's); the paths already overlap
    face_int8: bool = True  #: run the face bundle's shipped int8 network when it has one (onnx backend)
    #: face test-time views: "alternate" (a video's sampled frames seen as they are and mirrored in turn, one view
    #: each: a window pools both views at the cost of one; a photo gets both), "flip" (both views on every frame;
    #: FER-2013 PrivateTest cost in BENCHMARKS.md), "none", "tencrop" (10 views, 5x the cost), or None for the
    #: bundle's setting (face.fer2013: flip, chosen on PublicTest)
    face_tta: str | None = "alternate"
    #: also transcribe the speech (Whisper base, offline) and score each window's words with the text bundle
    #: (``text_*`` columns, ``transcript``); off by default: 1.77x the default analysis's wall time on the 60 s
    #: speed video (``avemo bench text``, BENCHMARKS.md)
    text: bool = False
    #: a photo where no face is found, even framed, is read as a face crop itself (the crop network alone;
    #: ``face_whole_photo`` in the result's ``attrs``) if its size, shape and contrast allow (:data:`WHOLE_PHOTO_SIDE`
    #: and after): face-expression photo sets are such crops (BENCHMARKS.md, face photos)
    whole_photo_face: bool = True
    #: the speech's language for ``text`` (a Whisper code: "en", "de" ...); None: Whisper detects it on the first
    #: 10 s of speech, and short clips are often taken for another language (39 of SAVEE's 480 English clips)
    language: str | None = None
    #: the stretch of a video or audio file analysed, seconds from its start (``end`` None: to the end; cut to the
    #: file's length); windows and times stay the file's
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        for name in ("window", "hop", "fps", "audio_chunk"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise AvemoError(f"analysis setting {name} must be a positive number of seconds (or frames per "
                                 f"second), got {value!r}")
        if not (math.isfinite(self.start) and self.start >= 0) or (
                self.end is not None and not (math.isfinite(self.end) and self.end > self.start)):
            raise AvemoError(f"analysis settings start and end must give 0 <= start < end seconds, got start "
                             f"{self.start!r}, end {self.end!r}")
        if not 0 <= self.min_speech <= 1:
            raise AvemoError(f"analysis setting min_speech must be a share between 0 and 1, got {self.min_speech!r}")
        if self.landmark_every < 1 or self.max_faces < 1:
            raise AvemoError("analysis settings landmark_every and max_faces must be at least 1")
        if self.backend not in ("onnx", "torch"):
            raise AvemoError(f"analysis setting backend must be 'onnx' or 'torch', got {self.backend!r}")


#: ``whole_photo_face``: the largest photo (longer side, pixels), the most elongated and the smallest (shorter side)
#: that count as a face crop, and the least contrast (standard deviation of its grey levels: a flat picture is none)
WHOLE_PHOTO_SIDE, WHOLE_PHOTO_ASPECT, WHOLE_PHOTO_MIN, WHOLE_PHOTO_CONTRAST = 256, 1.5, 24, 8.0

def whole_photo_ok(image: np.ndarray) -> bool:
    """Whether a photo where no face is found may be read whole as a face crop (``whole_photo_face``): its size,
    shape and contrast (:data:`WHOLE_PHOTO_SIDE` and after)."""
    h, w = image.shape[:2]
    return (WHOLE_PHOTO_MIN <= min(h, w) and max(h, w) <= min(WHOLE_PHOTO_SIDE, WHOLE_PHOTO_ASPECT * min(h, w))
            and float(image.std()) >= WHOLE_PHOTO_CONTRAST)


#: the settings ``--exact-faces`` gives: MediaPipe on every sampled frame, the decoder's full work, both views of
#: the face network on every frame
EXACT_FACES: dict[str, Any] = {"landmark_every": 1, "skip_loop_filter": False, "face_tta": "flip"}


@dataclass
class FaceTrackFrames:
    """Per-frame face probabilities of one track, with its boxes (decoded-frame pixels) and whether each frame's
    face used the face model's blendshape member (False: a face without landmarks, the crop network alone)."""

    times: np.ndarray
    probs: np.ndarray
    boxes: np.ndarray
    blendshapes: np.ndarray


@dataclass
class StageTimes:
    """Seconds spent in each stage of one analysis (threads overlap, so they need not add up)."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


class Analyzer:
    """Loads the models once; :meth:`analyze` then runs on any number of files.

    ``models`` maps ``face``, ``voice`` and ``fusion`` to bundle names (``"default"``:
    :data:`~avemo.inference.predictors.DEFAULT_MODELS`).
    """

    def __init__(self, models: str | dict[str, str] = "default", **config: Any) -> None:
        self.config = AnalyzerConfig(**config)
        names = dict(DEFAULT_MODELS) if models == "default" else {**DEFAULT_MODELS, **dict(models)}
        self.model_names = names
        self._face: FacePredictor | None = None
        self._voice: VoicePredictor | None = None
        self._text: Any = None
        self.fusion = Fusion(names["fusion"])
        self.last_times = StageTimes()
        self._image_scanner: Any = None  # one MediaPipe image-mode landmarker for every photo (about 0.1 s to make)
        self._image_lock = threading.Lock()

    def with_settings(self, **changes: Any) -> Analyzer:
        """A new analyzer with ``changes`` to these settings, sharing the models this one has loaded where the
        changes leave them as they are (``text=True`` on a warm analyzer loads only the transcriber)."""
        other = Analyzer(self.model_names, **{**asdict(self.config), **changes})
        same = {k: getattr(self.config, k) == getattr(other.config, k) for k in
                ("backend", "model_threads", "face_int8", "language")}
        if same["backend"] and same["model_threads"]:
            other._voice = self._voice
            if same["face_int8"] and self._network_views == other._network_views:  # "alternate" is "flip" there
                other._face = self._face
        if self._text is not None:
            try:
                other._text = self._text if same["language"] else self._text.with_language(other.config.language)
            except ValueError as err:  # an unknown language code
                raise AvemoError(f"analysis setting language: {err}") from None
        other.fusion = self.fusion
        return other

    @property
    def _network_views(self) -> str | None:
        """The face network's own views: "alternate" is decided frame by frame here, so the network keeps both
        (what a photo gets)."""
        return "flip" if self.config.face_tta == "alternate" else self.config.face_tta

    @property
    def face_model(self) -> FacePredictor:
        if self._face is None:
            self._face = FacePredictor(self.model_names["face"], backend=self.config.backend,
                                       tta=self._network_views, threads=self.config.model_threads,
                                       int8=self.config.face_int8)
        return self._face

    @property
    def text_model(self) -> Any:
        """Transcriber + text bundle (:class:`avemo.text.windows.WindowText`), loaded on first use."""
        if self._text is None:
            from avemo.text.windows import WindowText

            try:
                self._text = WindowText(self.model_names.get("text", "text.carer"), threads=1,
                                        language=self.config.language)
            except ValueError as err:  # an unknown language code
                raise AvemoError(f"analysis setting language: {err}") from None
        return self._text

    @property
    def voice_model(self) -> VoicePredictor:
        if self._voice is None:
            self._voice = VoicePredictor(self.model_names["voice"], backend=self.config.backend,
                                         threads=self.config.model_threads)
        return self._voice

    def analyze(self, path: str | Path, *, progress: Callable[[float, float], None] | None = None,
                image: bool | None = None) -> EmotionTimeline:
        """Analyse one file into one timeline (with ``all_faces``, the rows of every face track, told apart
        by the ``track`` column). ``image``: whether the file is a still picture (default: by its extension).

        ``progress(seconds_done, duration)`` is called as the media is worked through (about every
        second of video, or every audio chunk of an audio-only file), possibly from a worker thread. An http(s)
        URL is downloaded first, once, into ``$AVEMO_CACHE/downloads`` (:func:`avemo.media.fetch.fetch`).
        """
        from avemo.media import is_image, probe
        from avemo.media.fetch import fetch, is_url

        if is_url(path):
            from avemo.config import cache_root

            path = fetch(str(path), cache_root() / "downloads")
        path = Path(path)
        times = StageTimes()
        self.last_times = times
        if is_image(path) if image is None else image:
            return self._analyze_image(path, times)
        info = probe(path)
        if not info.has_video and not info.has_audio:
            raise MediaError(path, "has neither a video nor an audio track")
        length = float(info.duration or 0.0)
        if length <= 0:
            raise MediaError(path, "has no duration (empty stream?)")
        begin, stop = self.config.start, min(self.config.end or length, length)  # the stretch analysed
        if stop - begin < 0.05:
            raise MediaError(path, f"the stretch asked for (from {begin:g} s) lies beyond its {length:.2f} s")
        duration = stop - begin
        span = (begin, self.config.end)  # what the decoders read: to the end of each stream unless an end is given

        from avemo.audio import make_windows

        rel = make_windows(duration, self.config.window, self.config.hop)  # from the stretch's start
        windows = [type(w)(w.start + begin, w.end + begin) for w in rel]
        starts = np.array([w.start for w in windows])
        ends = np.array([w.end for w in windows])
        # models load (and export to ONNX on first use) here, not inside the two threads
        if info.has_video:
            self.face_model  # noqa: B018
        if info.has_audio:
            self.voice_model  # noqa: B018
            if self.config.text:
                self.text_model  # noqa: B018
        def report(done: float) -> None:
            if progress is not None:
                progress(min(done, duration), duration)

        # numpy's BLAS on one thread while the paths run: its worker threads otherwise spin between the heads'
        # small products, CPU the face path needs (60 s x264 720p: 4.03 -> 3.51 s, CPU 7.56 -> 6.41 s;
        # benchmarks/results/speed/blas_one_thread.json). The networks keep the config's threads. Process-wide
        # while it lasts.
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max_workers=2) as pool:
            voice_job = (pool.submit(self._voice_windows, path, rel, times,
                                     None if info.has_video else report, span) if info.has_audio else None)
            tracks = (self._face_frames(path, times, lambda t: report(t - begin), span) if info.has_video
                      else {})
            voice, text = voice_job.result() if voice_job else (None, None)
        t0 = time.perf_counter()
        # main-face mode keeps one series (key 0, see _face_frames); --all-faces one per track
        track_ids = (sorted(tracks) if self.config.all_faces else list(tracks)) or [None]
        parts = [self._timeline(path, info, starts, ends, tracks.get(tid), voice, tid, text) for tid in track_ids]
        out = parts[0] if len(parts) == 1 else EmotionTimeline.concat(parts)
        times.add("fusion", time.perf_counter() - t0)
        report(duration)
        return out

    # ---- the two paths -------------------------------------------------------------------------
    def _face_frames(self, path: Path, times: StageTimes, report: Callable[[float], None] | None = None,
                     span: tuple[float, float | None] = (0.0, None), batch: int = 64) -> dict[int, FaceTrackFrames]:
        """Per track: sampled-frame times, face probabilities and boxes, over ``span`` (seconds of the file). Crops
        are classified in batches as they come and then dropped, so memory holds probabilities only (flat in video
        length)."""
        from avemo.faces import MAX_TRACKED_FACES, iter_scan_video

        cfg = self.config
        pending: list[tuple[int, np.ndarray, Any, bool]] = []
        jobs: list[tuple[list[int], Any]] = []
        stamps: dict[int, list[float]] = {}
        boxes: dict[int, list[tuple[float, ...]]] = {}

        alternate = cfg.face_tta == "alternate"

        def classify(crops: np.ndarray, faces: list, mirror: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            t = time.perf_counter()
            out = self.face_model.predict_faces(crops, self.face_model.features(faces),
                                                mirror if alternate else None)
            times.add("face model", time.perf_counter() - t)
            return out

        # the face network runs in its own thread, overlapping decoding and MediaPipe
        with ThreadPoolExecutor(max_workers=1) as worker:
            def flush() -> None:
                jobs.append(([tid for tid, _, _, _ in pending],
                              worker.submit(classify, np.stack([crop for _, crop, _, _ in pending]),
                                            [face for _, _, face, _ in pending],
                                            np.array([m for _, _, _, m in pending], dtype=bool))))
                pending.clear()

            reported, scan_s = 0.0, {}
            for k, ff in enumerate(iter_scan_video(path, cfg.fps, max_faces=MAX_TRACKED_FACES if cfg.all_faces
                                                   else cfg.max_faces,
                                      size=self.face_model.crop_size, grey=True, max_side=cfg.detect_side,
                                      decode_max_side=cfg.decode_side, skip_nonref=cfg.skip_nonref,
                                      skip_loop_filter=cfg.skip_loop_filter, landmark_every=cfg.landmark_every,
                                      seconds=scan_s, start=span[0], end=span[1])):
                faces = ff.faces if cfg.all_faces else ([ff.main] if ff.main is not None else [])
                for face in faces:
                    # main-face mode: one series of each frame's main face, whatever its track id (a face
                    # that leaves the picture for longer than the tracker's gap comes back as a new track)
                    tid = int(face.track_id) if cfg.all_faces and face.track_id is not None else 0
                    pending.append((tid, ff.crops[ff.faces.index(face)], face, k % 2 == 1))  # mirrored: odd frames
                    stamps.setdefault(tid, []).append(ff.time)
                    boxes.setdefault(tid, []).append(tuple(face.box))
                if len(pending) >= batch:
                    flush()
                if report is not None and ff.time >= max(reported, span[0]) + 1.0:
                    reported = ff.time
                    report(ff.time)
            for stage, sec in scan_s.items():
                times.add(stage, sec)
            if pending:
                flush()
            probs: dict[int, list[np.ndarray]] = {}
            used: dict[int, list[bool]] = {}
            for tids, job in jobs:
                rows, flags = job.result()
                for tid, row, flag in zip(tids, rows, flags):
                    probs.setdefault(tid, []).append(row)
                    used.setdefault(tid, []).append(bool(flag))
        return {tid: FaceTrackFrames(np.asarray(stamps[tid]), np.stack(probs[tid]),
                                     np.asarray(boxes[tid], dtype=np.float32), np.asarray(used[tid]))
                for tid in stamps}

    def _voice_windows(self, path: Path, windows: list, times: StageTimes,
                       report: Callable[[float], None] | None = None, span: tuple[float, float | None] = (0.0, None)
                       ) -> tuple[tuple[np.ndarray, np.ndarray], Any]:
        """Per window: speech fraction and voice probabilities (NaN rows where there is no speech); and with
        ``text``, the transcript and the text columns. ``span``: the stretch of the file (seconds) whose audio is
        read; ``windows`` are in seconds from its start.

        The audio streams in ``audio_chunk`` pieces; a window is scored once its audio and the VAD decision
        around it are in, and audio no window still needs is dropped, so memory is flat in length (with
        ``text`` the whole 16 kHz track is kept for the transcriber: 3.8 MB a minute).
        """
        from avemo.audio import VoiceActivityDetector, segments_from_probs, speech_fraction
        from avemo.audio.vad import CHUNK
        from avemo.media import iter_audio

        sr, cfg = self.voice_model.sample_rate, self.config
        vad = VoiceActivityDetector().stream()
        probs_vad: list[np.ndarray] = []
        fraction = np.zeros(len(windows))
        out = np.full((len(windows), len(EMOTIONS)), np.nan, dtype=np.float32)
        buf, buf0, total, next_w = np.zeros(0, dtype=np.float32), 0, 0, 0
        lead = 2.0  # seconds of VAD history before a window, for the hysteresis to settle
        voice = self.voice_model
        encoded: dict = {}  # a chunked voice encoder's chunks, each encoded once

        def score(final: bool) -> None:
            nonlocal buf, buf0, next_w
            t = time.perf_counter()
            vad_p = np.concatenate(probs_vad) if probs_vad else np.zeros(0, np.float32)
            horizon = total / sr if final else len(vad_p) * CHUNK / sr - 1.0
            ready = []
            while next_w < len(windows) and (final or (windows[next_w].end <= horizon and
                                                       voice.audio_needed(windows[next_w].end) <= total / sr)):
                ready.append(next_w)
                next_w += 1
            if not ready:
                return
            first = max(0, int((windows[ready[0]].start - lead) * sr) // CHUNK)
            segs = segments_from_probs(vad_p[first:], n_samples=(total if final else len(vad_p) * CHUNK)
                                       - first * CHUNK)
            offset = first * CHUNK / sr
            segs = [type(sg)(sg.start + offset, sg.end + offset) for sg in segs]
            for i in ready:
                fraction[i] = speech_fraction(segs, windows[i].start, windows[i].end)
            times.add("vad", time.perf_counter() - t)
            voiced = [i for i in ready if fraction[i] >= cfg.min_speech]
            if voiced:
                t = time.perf_counter()
                out[voiced] = voice.predict_windows(buf, [windows[i] for i in voiced], offset_s=buf0 / sr,
                                                    cache=encoded)
                times.add("voice model", time.perf_counter() - t)
            if next_w < len(windows):  # drop audio (and encoded chunks) no remaining window needs
                start = voice.audio_from(windows[next_w].start)
                keep = max(0, int(round(start * sr)) - buf0)
                buf, buf0 = buf[keep:], buf0 + keep
                voice.forget(encoded, start)

        kept: list[np.ndarray] = []
        t0 = time.perf_counter()
        for chunk in iter_audio(path, sr, chunk_seconds=cfg.audio_chunk, start=span[0], end=span[1]):
            times.add("audio decode", time.perf_counter() - t0)
            if cfg.text:
                kept.append(chunk)
            t = time.perf_counter()
            probs_vad.append(vad.feed(chunk))
            times.add("vad", time.perf_counter() - t)
            buf = np.concatenate([buf, chunk])
            total += chunk.size
            score(final=False)
            if report is not None:
                report(total / sr)
            t0 = time.perf_counter()
        probs_vad.append(vad.finish())
        score(final=True)
        text = None
        if cfg.text:
            t = time.perf_counter()
            wave = np.concatenate(kept) if kept else np.zeros(0, np.float32)
            if sr != 16000:
                from avemo.audio import resample

                wave = resample(wave, sr, 16000)
            transcript, cols = self.text_model(wave, [w.start for w in windows], [w.end for w in windows])
            text = (transcript.shifted(span[0]), cols)  # the file's times
            times.add("text", time.perf_counter() - t)
        return (fraction, out), text

    # ---- assembling ----------------------------------------------------------------------------
    def _timeline(self, path: Path, info: Any, starts: np.ndarray, ends: np.ndarray,
                  face: FaceTrackFrames | None, voice: tuple[np.ndarray, np.ndarray] | None,
                  track: int | None, text: Any = None) -> EmotionTimeline:
        n = len(starts)
        face_probs = np.full((n, len(EMOTIONS)), np.nan, dtype=np.float32)
        blendshape_share = np.full(n, np.nan)
        if face is not None:
            for i, (s, e) in enumerate(zip(starts, ends)):
                inside = (face.times >= s) & (face.times < e) if e > s else face.times == s
                if inside.any():
                    face_probs[i] = self.face_model.pool(face.probs[inside])
                    blendshape_share[i] = face.blendshapes[inside].mean()
        if voice is None:
            voice = (np.zeros(n), np.full_like(face_probs, np.nan))
        speech_frac, voice_probs = voice
        face_labels = self.face_model.labels if face is not None else EMOTIONS
        probs: dict[str, np.ndarray] = {"face": face_probs, "voice": voice_probs}
        labels: dict[str, tuple[str, ...]] = {"face": face_labels}
        if text is None and self.config.text:  # asked for, but no sound (a silent video, a photo): empty columns,
            from avemo.text.windows import text_windows  # so every result of a --text run has the same columns

            text = (None, text_windows([], starts, ends, model=_no_words, labels=EMOTIONS))
        if text is not None:
            probs["text"] = text[1][prob_columns("text")].to_numpy(dtype=np.float32)
            labels["text"] = self.text_model.bundle.labels if text[0] is not None else EMOTIONS
        flags = {"face_blendshapes": blendshape_share, "speech_fraction": speech_frac}
        if text is not None:
            flags["text_emotion_words"] = text[1]["text_emotion_words"].to_numpy(dtype=np.float64)
        fusion = self.fusion.fuse_details(probs, labels, self.fusion.evidence_from(flags, n))
        fused = fusion.fused
        has_face = ~np.isnan(face_probs).any(axis=1)
        has_voice = ~np.isnan(voice_probs).any(axis=1)
        has_text = ~np.isnan(probs["text"]).any(axis=1) if "text" in probs else np.zeros(n, dtype=bool)
        source = np.select([has_face & has_voice, has_face, has_voice, has_text], ["av", "face", "voice", "text"],
                           "none")
        cols: dict[str, Any] = {"start": starts, "end": ends, "face": has_face, "speech": has_voice,
                                "speech_fraction": np.round(speech_frac, 3), "source": source,
                                "face_blendshapes": np.round(blendshape_share, 3)}
        if self.config.all_faces:
            cols["track"] = track
        for modality, p in (("face", face_probs), ("voice", voice_probs), ("fused", fused)):
            cols.update(dict(zip(prob_columns(modality), p.T)))
        if text is not None:  # the words of each window and their emotions
            cols.update({k: v.to_numpy() for k, v in text[1].items()})
        ok = ~np.isnan(fused).any(axis=1)
        cols["label"] = np.where(ok, np.array(EMOTIONS, dtype=object)[np.nan_to_num(fused).argmax(1)], None)
        cols["confidence"] = np.where(ok, np.nan_to_num(fused).max(1), np.nan)
        cols["uncertain"] = fusion.uncertain.astype(bool)
        for j, m in enumerate(fusion.modalities):  # what each window's fused answer rests on, and how much
            if m in probs:
                cols[f"weight_{m}"] = np.round(fusion.weights[:, j].astype(np.float64), 4)
        cols.update(evidence_columns(probs, labels))
        out = EmotionTimeline(pd.DataFrame(cols))
        out.attrs.update(self._metadata(path, info))
        if text is not None and text[0] is not None:
            out.attrs["transcript"] = text[0].to_dict()
        if face is not None:  # per sampled frame: time, track and box (EmotionTimeline.boxes), for drawing
            track_col = np.full(len(face.times), -1 if track is None else track)
            out.attrs["face_boxes"] = np.round(np.column_stack([face.times, track_col, face.boxes]), 2).tolist()
        return out

    def _metadata(self, path: Path, info: Any) -> dict[str, Any]:
        return {
            "source": str(path), "labels": list(EMOTIONS), "avemo_version": __version__,
            "config": asdict(self.config),
            "models": {"face": self.model_names["face"], "voice": self.model_names["voice"],
                       "fusion": self.fusion.name},
            "media": {k: (v if isinstance(v, str | int | float | bool) or v is None else str(v))
                      for k, v in asdict(info).items()} if info is not None else {},
        }

    def _analyze_image(self, path: Path, times: StageTimes) -> EmotionTimeline:
        from avemo.faces import MAX_TRACKED_FACES, FaceScanner
        from avemo.media import read_image

        t0 = time.perf_counter()
        image = read_image(path)
        with self._image_lock:
            if self._image_scanner is None:
                self._image_scanner = FaceScanner(mode="image", size=self.face_model.crop_size, grey=True,
                                                  track=False, max_side=self.config.detect_side,
                                                  max_faces=MAX_TRACKED_FACES if self.config.all_faces
                                                  else self.config.max_faces)
            ff = self._image_scanner.process(image, time=0.0, index=0)
        # the main face, or with all_faces every face, largest first (its ``track`` is its rank)
        faces = (sorted(ff.faces, key=lambda f: -f.area * f.score) if self.config.all_faces
                 else [ff.main] if ff.main is not None else [])
        h, w = image.shape[:2]
        whole = not faces and self.config.whole_photo_face and whole_photo_ok(image)
        found: list[FaceTrackFrames | None] = [None]
        if faces:
            crops = np.stack([ff.crops[ff.faces.index(f)] for f in faces])
            probs, used = self.face_model.predict_faces(crops, self.face_model.features(faces))
            found = [FaceTrackFrames(np.zeros(1), probs[k:k + 1], np.asarray([f.box], dtype=np.float32), used[k:k + 1])
                     for k, f in enumerate(faces)]
        elif whole:  # a tight face crop no detector reads: the photo itself is the face, as FER-2013 frames it
            import cv2

            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            side = self.face_model.crop_size
            crop = cv2.resize(grey, (side, side), interpolation=cv2.INTER_AREA if max(h, w) > side else cv2.INTER_CUBIC)
            probs, used = self.face_model.predict_faces(crop[None], None)
            found = [FaceTrackFrames(np.zeros(1), probs, np.asarray([[0, 0, w, h]], dtype=np.float32), used)]
        times.add("faces", time.perf_counter() - t0)
        ranks = range(len(faces)) if self.config.all_faces and faces else [None]
        parts = [self._timeline(path, None, np.zeros(1), np.zeros(1), face, None, k) for k, face in zip(ranks, found)]
        out = parts[0] if len(parts) == 1 else EmotionTimeline.concat(parts)
        out.attrs["media"] = {"kind": "image", "width": int(w), "height": int(h)}
        out.attrs["face_whole_photo"] = bool(whole)
        return out


def _no_words(sentences: list[str]) -> np.ndarray:  # the text model of a window list without words: never called
    raise AssertionError("no words to score")


def analyze(path_or_paths: str | Path | list[str | Path], *, window: float = 3.0, fps: float = 5.0,
            model: str | dict[str, str] = "default",
            on_error: Callable[[Path, Exception], None] | None = None,
            **config: Any) -> EmotionTimeline | list[EmotionTimeline | None]:
    """Analyse a file (returns its :class:`EmotionTimeline`) or a list of files (returns a list of them).

    ``config``: any :class:`AnalyzerConfig` setting. In a list, a file that fails is reported to
    ``on_error`` (default: re-raise) and gives ``None``. ``avemo.analyze`` is this function.
    """
    analyzer = Analyzer(model, window=window, fps=fps, **config)
    if isinstance(path_or_paths, str | Path):
        return analyzer.analyze(path_or_paths)
    out: list[Any] = []
    for p in path_or_paths:
        try:
            out.append(analyzer.analyze(p))
        except MediaError as exc:
            if on_error is None:
                raise
            on_error(Path(p), exc)
            out.append(None)
    return out
