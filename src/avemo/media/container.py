"""Opening containers: the one way media files are opened (:func:`open_media`), their streams found, and
PyAV / OS failures translated into :class:`avemo.errors.MediaError`.

Every public function of :mod:`avemo.media` opens files through :func:`open_media` and runs its
decoding inside :func:`translated`, so no ``av.error.*`` or ``OSError`` reaches the caller. What a file's
headers claim is checked against :mod:`avemo.media.limits` on opening (:func:`check_claims`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
from av.stream import Disposition

from avemo.errors import MediaError

# the extensions read as still images (see avemo.media.image)
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".pnm"}
)
# demuxers that mean "a single still image", not a video
_IMAGE_FORMATS = ("image2", "_pipe")
# demuxers FFmpeg uses for plain text (its ANSI-art reader accepts any text file)
_TEXT_FORMATS = frozenset({"tty"})


def _ffmpeg_reason(exc: BaseException) -> str:
    """The short FFmpeg reason of an exception, without the repeated file name."""
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def check_file(path: str | os.PathLike[str]) -> Path:
    """The path as a :class:`Path` when it names a non-empty regular file; else :class:`MediaError`."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(p, "file not found") from None
    except OSError as exc:
        raise MediaError(p, f"cannot be read: {_ffmpeg_reason(exc)}") from None
    if p.is_dir():
        raise MediaError(p, "is a directory, not a media file")
    if st.st_size == 0:
        raise MediaError(p, "is empty (0 bytes)")
    return p


def video_stream(container: av.container.InputContainer):
    """The first real video stream that FFmpeg can decode (cover art in music files is not video), or None."""
    for s in container.streams.video:
        if not s.disposition & Disposition.attached_pic and s.codec_context is not None:
            return s
    return None


def audio_stream(container: av.container.InputContainer):
    """The first audio stream that FFmpeg can decode, or None."""
    for s in container.streams.audio:
        if s.codec_context is not None:
            return s
    return None


def _missing(container: av.container.InputContainer, kind: str) -> str:
    """Why there is no usable ``kind`` stream: none at all, or none in a codec FFmpeg can decode."""
    if any(s.codec_context is None for s in getattr(container.streams, kind)):
        return f"has {'an' if kind == 'audio' else 'a'} {kind} track in a codec that cannot be decoded"
    return f"has no {kind} track"


def is_image_path(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def open_media(path: str | os.PathLike[str], *, want: str | None = None) -> av.container.InputContainer:
    """Open ``path`` for decoding; ``want`` ("video" or "audio") checks that such a stream exists.

    Raises :class:`MediaError` for a missing, empty, unreadable, truncated (index missing) or
    non-media file, for an image where a video is wanted, and for a missing stream.
    """
    p = check_file(path)
    if want == "video" and is_image_path(p):
        raise MediaError(p, "is an image, not a video")
    try:
        # metadata that is not UTF-8 (Latin-1 tags, damaged headers) is read with replacement characters
        container = av.open(str(p), mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(
            p, f"cannot be opened as media (truncated, corrupt or not audio/video): {_ffmpeg_reason(exc)}"
        ) from None
    fmt = container.format.name or ""
    if fmt in _TEXT_FORMATS:
        container.close()
        raise MediaError(p, "is not a media file (it looks like text)")
    if want == "video" and any(part in fmt for part in _IMAGE_FORMATS):
        container.close()
        raise MediaError(p, "is an image, not a video")
    if want == "video" and video_stream(container) is None:
        problem = _missing(container, "video")
        container.close()
        raise MediaError(p, problem)
    if want == "audio" and audio_stream(container) is None:
        problem = _missing(container, "audio")
        container.close()
        raise MediaError(p, problem)
    if want is None and video_stream(container) is None and audio_stream(container) is None:
        container.close()
        raise MediaError(p, "has neither a video nor an audio track")
    try:
        check_claims(p, container)
    except MediaError:
        container.close()
        raise
    return container


def check_claims(path: str | os.PathLike[str], container: av.container.InputContainer) -> None:
    """Refuse a file whose headers claim more than :mod:`avemo.media.limits` allows (frame size, duration,
    channels, sample rate), before anything is decoded."""
    from avemo.media.limits import check_audio, check_duration, check_pixels

    v, a = video_stream(container), audio_stream(container)
    if v is not None:
        check_pixels(path, v.codec_context.width, v.codec_context.height)
    if a is not None:
        check_audio(path, a.codec_context.channels, a.codec_context.sample_rate)
    if container.duration is not None and container.duration > 0:
        check_duration(path, container.duration / 1_000_000)
    for s in (v, a):
        if s is not None and s.duration and s.time_base and s.duration > 0:
            check_duration(path, float(s.duration * s.time_base))


@contextlib.contextmanager
def translated(path: str | os.PathLike[str], doing: str) -> Iterator[None]:
    """Turn PyAV and OS errors raised while ``doing`` something with ``path`` into :class:`MediaError`."""
    try:
        yield
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(path, f"{doing} failed (truncated or corrupt?): {_ffmpeg_reason(exc)}") from None


def decode_checked(container, stream, path: str | os.PathLike[str], what: str) -> Iterator[object]:
    """The decoded frames of ``stream``, with damaged data detected.

    All streams are demuxed (only ``stream`` is decoded), because a cut file's only sign may be a
    partial packet of another stream. Packets the demuxer marks as corrupt (a truncated file's
    last, partial packet) and packets the decoder rejects are skipped; once the stream is
    exhausted and everything decodable has been yielded, :class:`MediaError` says the file is
    truncated or corrupt. A demuxer failure (unreadable data) raises at once, after the frames
    before it.
    """
    damaged = 0
    last_time = None
    with translated(path, f"reading the {what}"):
        for packet in container.demux():
            if packet.is_corrupt:
                damaged += 1
                continue
            if packet.stream_index != stream.index:
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                damaged += 1
                continue
            for frame in frames:
                if frame.time is not None:
                    last_time = frame.time
                yield frame
    if damaged:
        where = f"; decodable data ends near {last_time:.2f} s" if last_time is not None else ""
        raise MediaError(path, f"is truncated or corrupt: {damaged} damaged {what} packet(s){where}")
