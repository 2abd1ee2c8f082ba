"""The server's one link to the analysis code (everything else in :mod:`avemo.serve` is HTTP, jobs
and files). What it uses from the library:

- :func:`avemo.media.probe`, :func:`avemo.media.iter_frames`, :func:`avemo.media.write_video` and
  :class:`avemo.errors.MediaError` (upload checks, the browser preview);
- :class:`avemo.inference.analyzer.Analyzer` (``Analyzer("default", **config)`` once per worker
  process, then ``analyze(path, progress=...)``, one :class:`EmotionTimeline`), and the timeline's
  ``to_csv``, ``summary()``, ``plot(path)``, ``save_json`` and ``EmotionTimeline.load_json``;
- :class:`avemo.inference.live.LiveAnalyzer` and :class:`avemo.media.live.LiveSource` (the
  WebSocket's frames and audio as a live source; :class:`avemo.inference.events.LiveEvent` dicts out);
- :func:`avemo.models.bundles.list_bundles` and :func:`~avemo.models.bundles.load` (kind, labels, card),
  :data:`avemo.inference.predictors.DEFAULT_MODELS` (``GET /v1/models``).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import AvemoError, MediaError

log = logging.getLogger(__name__)

#: the result files of a job (API name -> file in the job folder); the plot is drawn when first asked for
RESULT_FILES = {"csv": "timeline.csv", "json": "timeline.json", "png": "timeline.png", "vtt": "timeline.vtt"}
#: the analysis settings a job may set (``POST /v1/analyze?...``), with the bounds the service accepts
JOB_OPTIONS = ("text", "language", "window", "hop", "fps", "all_faces", "start", "end")
OPTION_BOUNDS = {"window": (0.5, 60.0), "hop": (0.1, 60.0), "fps": (0.5, 30.0)}
_VARIANTS = 8

# what browsers play as they are (container demuxer names as FFmpeg gives them); anything else with
# a picture gets an H.264 preview
_MP4 = "mov,mp4,m4a,3gp,3g2,mj2"
_PLAYABLE_VIDEO = {_MP4: ({"h264"}, {"aac", "mp3", "mp3float", None}),
                   "matroska,webm": ({"vp8", "vp9", "av1"}, {"opus", "vorbis", None})}
_PLAYABLE_AUDIO = {"wav": {"pcm_s16le", "pcm_s24le", "pcm_f32le", "pcm_u8"}, "mp3": {"mp3", "mp3float"},
                   "flac": {"flac"}, "ogg": {"vorbis", "opus", "flac"}, _MP4: {"aac"},
                   "matroska,webm": {"opus", "vorbis"}}


# ---- upload checks -----------------------------------------------------------------------------------
def check_media(path: Path, name: str) -> dict[str, Any]:
    """What an uploaded file holds, checked by decoding (never by its name): the streams are read
    (probe), every packet is demuxed (a cut file shows a partial packet, or ends well before the
    duration its header announces) and the first frame of each stream is decoded.

    Returns the facts the API shows (duration, streams, codecs, size, ``playable`` in a browser).
    Raises :class:`MediaError` naming ``name`` (the client's file name, never the server path).
    """
    import av
    import av.error

    from avemo.media import probe

    try:
        info = probe(path)
    except MediaError as exc:
        raise MediaError(name, exc.problem) from None
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:  # probe opened it a moment ago: unusual
        raise MediaError(name, f"cannot be opened as media: {exc}") from None
    with container:
        fmt = container.format.name or ""
        if fmt.startswith("image2") or fmt.endswith("_pipe"):
            return _check_photo(path, name, fmt)
        if not info.has_video and not info.has_audio:
            raise MediaError(name, "has neither a video nor an audio track")
        if not info.duration or info.duration <= 0:
            raise MediaError(name, "has no duration (an empty stream?)")
        streams = [s for s in (_video_stream(container), _audio_stream(container)) if s is not None]
        wanted = {s.index: s for s in streams}
        decoded: set[int] = set()
        corrupt, content_end = 0, 0.0
        try:
            for packet in container.demux():
                if packet.is_corrupt:
                    corrupt += 1
                    continue
                stream = wanted.get(packet.stream_index)
                if stream is None:
                    continue
                if packet.pts is not None and packet.time_base:
                    start = stream.start_time or 0
                    content_end = max(content_end, float((packet.pts - start + (packet.duration or 0))
                                                         * packet.time_base))
                if packet.stream_index not in decoded:
                    try:
                        if packet.decode():
                            decoded.add(packet.stream_index)
                    except av.error.FFmpegError:
                        corrupt += 1
            for index, stream in wanted.items():  # decoders that hold frames back until flushed
                if index not in decoded:
                    try:
                        if stream.codec_context.decode(None):
                            decoded.add(index)
                    except av.error.FFmpegError:
                        pass
        except (av.error.FFmpegError, OSError) as exc:
            raise MediaError(name, f"is truncated or corrupt: reading failed ({exc.strerror or exc})") from None
    if corrupt:
        raise MediaError(name, f"is truncated or corrupt: {corrupt} damaged packet(s)")
    missing = [s.type for i, s in wanted.items() if i not in decoded]
    if missing:
        raise MediaError(name, f"is corrupt: its {' and '.join(missing)} track cannot be decoded")
    if content_end > 0 and content_end < 0.8 * info.duration - 1.0:
        raise MediaError(name, f"is truncated: its data ends at {content_end:.1f} s of the "
                               f"{info.duration:.1f} s its header announces")
    return {"duration": round(float(info.duration), 3), "has_video": info.has_video, "has_audio": info.has_audio,
            "width": info.width, "height": info.height, "fps": None if info.fps is None else round(info.fps, 3),
            "rotation": info.rotation, "video_codec": info.video_codec, "audio_codec": info.audio_codec,
            "audio_rate": info.audio_rate, "format": fmt, "playable": _playable(fmt, info)}


def _check_photo(path: Path, name: str, fmt: str) -> dict[str, Any]:
    """A still picture's facts (``kind`` image, no duration), checked by decoding it as the analyzer will."""
    from avemo.media import read_image

    try:
        h, w = read_image(path).shape[:2]
    except MediaError as exc:
        raise MediaError(name, exc.problem) from None
    return {"kind": "image", "duration": 0.0, "has_video": False, "has_audio": False, "width": w, "height": h,
            "fps": None, "rotation": None, "video_codec": None, "audio_codec": None, "audio_rate": None,
            "format": fmt, "playable": False}


def _video_stream(container: Any) -> Any:
    from av.stream import Disposition

    return next((s for s in container.streams.video if not s.disposition & Disposition.attached_pic), None)


def _audio_stream(container: Any) -> Any:
    return container.streams.audio[0] if container.streams.audio else None


def _playable(fmt: str, info: Any) -> bool:
    """Whether browsers play the file as it is (else a video gets an H.264 preview)."""
    if info.has_video:
        video, audio = _PLAYABLE_VIDEO.get(fmt, (set(), set()))
        return info.video_codec in video and info.audio_codec in audio
    return info.audio_codec in _PLAYABLE_AUDIO.get(fmt, set())


# ---- analysis jobs (in a worker process) ---------------------------------------------------------------
class JobEngine:
    """One worker process's analyzer: the models load once (:meth:`warm_up`), then :meth:`run` per job."""

    def __init__(self, *, preview_side: int = 480, **config: Any) -> None:
        from avemo.inference.analyzer import Analyzer

        self.analyzer = Analyzer("default", **config)
        self._variants: dict[tuple, Any] = {}  # analyzers for other job options, oldest first
        self._text_base: Any = None  # the last of them that transcribes (its Whisper model is shared)
        self.preview_side = preview_side

    @property
    def model_names(self) -> dict[str, str]:
        return dict(self.analyzer.model_names)

    def warm_up(self) -> None:
        """Load the face and voice networks now (the first job would otherwise pay for it)."""
        self.analyzer.face_model  # noqa: B018
        self.analyzer.voice_model  # noqa: B018

    def analyzer_for(self, **options: Any) -> Any:
        """The analyzer of a job's options (:data:`JOB_OPTIONS`; the rest as the server's): the default one, or one
        made for them that shares the loaded networks (and, with ``text``, the Whisper model); the last
        :data:`_VARIANTS` such analyzers are kept."""
        config = self.analyzer.config
        full = {k: options.get(k, getattr(config, k)) for k in JOB_OPTIONS}
        if all(full[k] == getattr(config, k) for k in JOB_OPTIONS):
            return self.analyzer
        key = tuple(sorted(full.items()))
        if key not in self._variants:
            base = self._text_base if full["text"] and self._text_base is not None else self.analyzer
            self._variants[key] = base.with_settings(**full)
            if full["text"]:
                self._text_base = self._variants[key]
            while len(self._variants) > _VARIANTS:
                self._variants.pop(next(iter(self._variants)))
        return self._variants[key]

    def run(self, media: Path, folder: Path, name: str, info: dict[str, Any], progress: Callable[[float], None],
            **options: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Analyse ``media`` into ``folder``; returns the summary and the result files (API name ->
        file name). ``name`` (the client's file name) replaces the server path in the outputs. ``options``: the
        job's analysis settings (:data:`JOB_OPTIONS`: ``text`` also transcribes the speech, ``language`` its
        Whisper code; ``window``, ``hop``, ``fps``; ``all_faces``: a timeline for every face, by ``track``;
        ``start`` / ``end``: the stretch analysed, seconds)."""
        share = 0.85 if info.get("has_video") and not info.get("playable") else 0.97
        photo = info.get("kind") == "image"
        analyzer = self.analyzer_for(**options)
        timeline = analyzer.analyze(media, progress=lambda done, total: progress(
            share * done / total if total else 0.0), image=photo)
        folder.mkdir(parents=True, exist_ok=True)
        if photo:  # drawn now, while the figure can show the photo itself (its JSON keeps only the client's name)
            timeline.plot(folder / RESULT_FILES["png"], title=f"avemo — {name}")
        timeline.attrs["source"] = name
        if isinstance(timeline.attrs.get("media"), dict):
            timeline.attrs["media"]["path"] = name
        summary = timeline.summary()
        timeline.to_csv(folder / RESULT_FILES["csv"], index=False)
        timeline.save_json(folder / RESULT_FILES["json"])
        if not photo:
            timeline.to_vtt(folder / RESULT_FILES["vtt"])
        (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        files = {k: v for k, v in RESULT_FILES.items() if not (photo and k == "vtt")}
        if info.get("playable"):
            files["video"] = media.name
        elif info.get("has_video"):
            try:
                self._preview(media, folder / "preview.mp4", info, lambda p: progress(share + (1 - share) * p))
                files["video"] = "preview.mp4"
            except (MediaError, ValueError) as exc:  # the analysis stands; the page says there is no video
                log.warning("%s: no browser preview: %s", name, exc)
        progress(1.0)
        return summary, files

    def _preview(self, media: Path, out: Path, info: dict[str, Any], progress: Callable[[float], None]) -> None:
        """An H.264/AAC mp4 the browser can play, upright, longer side ``preview_side``."""
        from avemo.media import iter_frames, write_video

        fps = float(info.get("fps") or 25.0)
        total = max(1.0, float(info.get("duration") or 0.0) * fps)

        def frames() -> Iterator[np.ndarray]:
            for i, frame in enumerate(iter_frames(media, None, max_side=self.preview_side)):
                if i % 25 == 0:
                    progress(min(1.0, i / total))
                yield frame.image

        write_video(out, frames(), fps, audio_from=media if info.get("has_audio") else None,
                    crf=28, preset="veryfast")


_plot_lock = threading.Lock()


def plot_png(folder: Path) -> Path:
    """The job's timeline plot (drawn from its JSON on first request, then kept)."""
    out = folder / RESULT_FILES["png"]
    if out.is_file():
        return out
    from avemo.inference.result import EmotionTimeline

    timeline = EmotionTimeline.load_json(folder / RESULT_FILES["json"])
    with _plot_lock:  # one drawer per part file
        if not out.is_file():
            tmp = out.with_name("timeline.part.png")
            timeline.plot(tmp)
            tmp.replace(out)
    return out


# ---- models -------------------------------------------------------------------------------------------
def bundles_info() -> list[dict[str, Any]]:
    """The shipped bundles with their settings and model cards, and which analysis role uses each."""
    from avemo.inference.predictors import DEFAULT_MODELS
    from avemo.models.bundles import list_bundles, load

    out = []
    for name in list_bundles():
        b = load(name)
        out.append({"name": b.name, "kind": b.kind, "architecture": b.architecture, "labels": list(b.labels),
                    "default_for": [k for k, v in DEFAULT_MODELS.items() if v == name], "card": b.card})
    return out


# ---- live ---------------------------------------------------------------------------------------------
_live_lock = threading.Lock()
_live_analyzer: Any = None


def live_analyzer() -> Any:
    """The server's :class:`~avemo.inference.live.LiveAnalyzer` (default bundles; loaded on first use,
    then shared by the live sessions)."""
    global _live_analyzer
    with _live_lock:
        if _live_analyzer is None:
            from avemo.inference.live import LiveAnalyzer

            _live_analyzer = LiveAnalyzer("default", fps=5.0, hop=1.0, smooth=1.0, threads=1)
        return _live_analyzer


class LiveFeed:
    """Frames and audio pushed by a client, analysed as a live source in a thread of its own.

    ``push_frame(t, jpeg)``: JPEG bytes captured at media time ``t`` (seconds);
    ``push_audio(t, samples)``: float32 mono samples at ``sample_rate`` (the voice bundle's, which the session
    announces to the client) ending at ``t``. Times must increase
    per stream. ``on_event(dict)`` gets each :class:`~avemo.inference.live.LiveEvent` as a dict, from
    the feed's thread; ``on_end(summary | None, error | None)`` once at the end. Pieces that arrive
    while the analyzer is behind wait in a short queue; beyond it they are dropped (counted). ``text`` /
    ``language``: transcribe each utterance too; ``all_faces``: list every face in each event
    (:meth:`~avemo.inference.live.LiveAnalyzer.run`).
    """

    def __init__(self, analyzer: Any, *, video: bool, audio: bool, on_event: Callable[[dict[str, Any]], None],
                 on_end: Callable[[dict[str, Any] | None, str | None], None], max_seconds: float,
                 text: bool = False, language: str | None = None, all_faces: bool = False) -> None:
        from avemo.media.live import LiveSource

        if not (video or audio):
            raise AvemoError("a live session needs video, audio or both")
        self._queues: dict[str, queue.Queue] = {}
        readers = []
        for kind, on in (("video", video), ("audio", audio)):
            if on:
                self._queues[kind] = queue.Queue(maxsize=32 if kind == "video" else 200)
                readers.append(self._items(kind))
        self.dropped = {"video": 0, "audio": 0}
        self.bad_frames = 0
        self._source = LiveSource("websocket", readers, has_video=video, has_audio=audio, paced=False)
        self._analyzer, self._on_event, self._on_end, self._max = analyzer, on_event, on_end, max_seconds
        self._text, self._language, self._all_faces = text, language, all_faces
        self.sample_rate = int(analyzer.sample_rate)
        self._thread = threading.Thread(target=self._run, name="avemo-serve-live", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def push_frame(self, t: float, jpeg: bytes) -> None:
        self._put("video", (t, jpeg))

    def push_audio(self, t: float, samples: np.ndarray) -> None:
        self._put("audio", (t, samples))

    def _put(self, kind: str, item: tuple[float, Any]) -> None:
        q = self._queues.get(kind)
        if q is None or self._closed:
            return
        try:
            q.put_nowait(item)
        except queue.Full:
            self.dropped[kind] += 1

    def close(self) -> None:
        """No more input: the analysis finishes what it has and ends."""
        self._closed = True
        for q in self._queues.values():
            while True:
                try:
                    q.put(None, timeout=0.5)
                    break
                except queue.Full:  # a stalled reader: make room
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _items(self, kind: str) -> Iterator[tuple[str, float, np.ndarray]]:
        import cv2

        q = self._queues[kind]
        while True:
            item = q.get()
            if item is None:
                return
            t, data = item
            if kind == "audio":
                yield "audio", t, data
                continue
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                self.bad_frames += 1
                continue
            yield "video", t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _run(self) -> None:
        try:
            summary = self._analyzer.run(self._source, lambda ev: self._on_event(ev.to_dict()), self._max,
                                         text=self._text, language=self._language if self._text else None,
                                         all_faces=self._all_faces)
        except Exception as exc:  # reported to the client; the server goes on
            log.exception("live session failed")
            self._closed = True
            self._on_end(None, str(exc) if isinstance(exc, AvemoError) else f"internal error: {type(exc).__name__}")
            return
        finally:
            self.close()
        out = summary.to_dict()
        out.update(dropped_pieces=dict(self.dropped), bad_frames=self.bad_frames)
        self._on_end(out, None)
