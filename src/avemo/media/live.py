"""Live sources: a webcam and microphone (FFmpeg input devices), a network stream, or a file, read as
one stream of timed items for :class:`avemo.inference.live.LiveAnalyzer` (which paces files and streams
to real time).

- :func:`parse_source` turns ``webcam``, ``webcam:N``, ``/dev/videoN``, a URL or a path (and ``--mic``)
  into a :class:`SourceSpec`; :func:`check_source` does the cheap checks before models load.
- :func:`open_source` opens it as a :class:`LiveSource`: item iterators ``("video", t, RGB image)`` and
  ``("audio", t, mono samples)``, one per producer thread.

Every failure is a :class:`avemo.errors.MediaError` (or :class:`avemo.errors.AvemoError` for a bad
``--source`` / ``--mic`` text) naming the device, stream or file.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avemo.errors import AvemoError, MediaError

_AUDIO_CHUNK_S = 0.05  # file audio is handed over in pieces of this length

Item = tuple[str, float, np.ndarray]  # ("video" | "audio", media time, RGB image | mono samples)


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
    from avemo.media.container import audio_stream, video_stream

    if video_stream(container) is None and audio_stream(container) is None:
        container.close()
        raise MediaError(url, "has neither a video nor an audio track")
    return container


def _scaled(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if max_side is None or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(2, round(width * s)), max(2, round(height * s))


def container_items(container, name: str, *, max_side: int | None, clock: float | None = None,
                    sample_rate: int = 16000) -> Iterator[Item]:
    """Decoded video (RGB) and audio (mono at ``sample_rate``) of a PyAV container in arrival order.

    Times come from the timestamps (from the first one), or with ``clock`` (a ``perf_counter`` origin,
    for devices) from the wall time of arrival. Closes the container at the end.
    """
    import av
    import av.error

    from avemo.media.container import audio_stream, video_stream

    v, a = video_stream(container), audio_stream(container)
    streams = [s for s in (v, a) if s is not None]
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=sample_rate) if a is not None else None
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
                        yield "audio", (t if clock is not None else samples / sample_rate), chunk
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(name, f"reading failed: {_reason(exc)}") from None
    finally:
        container.close()


def file_items(path: str | Path, *, video: bool, audio: bool, max_side: int | None,
               sample_rate: int = 16000) -> Iterator[Item]:
    """Every frame and consecutive audio pieces of a file, merged in media-time order (audio pieces
    at their end time)."""
    from avemo.media import iter_audio, iter_frames

    parts: list[Iterator[Item]] = []
    if video:
        parts.append(("video", f.time, f.image) for f in iter_frames(path, None, max_side=max_side))
    if audio:
        parts.append(_timed_audio(iter_audio(path, sample_rate, chunk_seconds=_AUDIO_CHUNK_S), sample_rate))
    return heapq.merge(*parts, key=lambda item: item[1])


def _timed_audio(chunks: Iterable[np.ndarray], sample_rate: int) -> Iterator[Item]:
    n = 0
    for chunk in chunks:
        n += chunk.size
        yield "audio", n / sample_rate, chunk


@dataclass
class LiveSource:
    """A source ready to play (once): one item iterator per producer thread.

    Items are ``("video", time, image)`` with an RGB uint8 ``H x W x 3`` image, or ``("audio", time,
    samples)`` with float32 mono samples (at the rate the source was opened with) ending at ``time``;
    times in seconds, increasing.
    ``paced`` holds each item until its time falls due (files, streams); otherwise items count as
    captured when they arrive (devices, or any blocking iterator, e.g. frames from OpenCV).
    """

    name: str
    readers: list[Iterator[Item]]
    has_video: bool
    has_audio: bool
    paced: bool = False
    clock: list[float] = field(default_factory=lambda: [0.0])  # devices' time origin, set at start


def open_source(spec: SourceSpec, *, max_side: int | None = 720, sample_rate: int = 16000) -> LiveSource:
    """Open (and check) a source before any thread starts, so a bad source fails at once; audio comes
    mono at ``sample_rate``."""
    if spec.kind == "file":
        from avemo.media import probe

        info = probe(spec.target)
        if not info.has_video and not info.has_audio:
            raise MediaError(spec.target, "has neither a video nor an audio track")
        items = file_items(spec.target, video=info.has_video, audio=info.has_audio, max_side=max_side,
                           sample_rate=sample_rate)
        return LiveSource(spec.target, [items], info.has_video, info.has_audio, paced=True)
    if spec.kind == "url":
        from avemo.media.container import audio_stream, video_stream

        container = open_stream(spec.target)
        has_v, has_a = video_stream(container) is not None, audio_stream(container) is not None
        return LiveSource(spec.target, [container_items(container, spec.target, max_side=max_side,
                                                         sample_rate=sample_rate)],
                            has_v, has_a, paced=True)
    cam = open_device("v4l2", spec.target, "webcam")
    clock = [0.0]
    readers = [_clocked(cam, spec.target, max_side, clock, sample_rate)]
    if spec.mic is not None:
        try:
            mic = open_device(spec.mic[0], spec.mic[1], "microphone")
        except MediaError:
            cam.close()
            raise
        readers.append(_clocked(mic, f"{spec.mic[0]}:{spec.mic[1]}", None, clock, sample_rate))
    return LiveSource(spec.target, readers, True, spec.mic is not None, paced=False, clock=clock)


def _clocked(container, name: str, max_side: int | None, clock: list[float], sample_rate: int) -> Iterator[Item]:
    # the clock origin is only known when the threads start, hence the indirection
    yield from container_items(container, name, max_side=max_side, clock=clock[0], sample_rate=sample_rate)
