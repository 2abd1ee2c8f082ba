"""``probe``: what a media file holds, read from its headers (and its first video frame, for rotation)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import av.error

from avemo.media.container import audio_stream, open_media, translated, video_stream


@dataclass(frozen=True)
class MediaInfo:
    """A media file's streams at a glance.

    ``width``/``height`` are as displayed: swapped when ``rotation`` is 90 or 270, and with a
    non-square sample aspect ratio applied to the width. ``rotation`` is the counter-clockwise
    angle (0, 90, 180 or 270) the stored picture must be turned by to display upright — the
    convention of FFmpeg's display matrix. ``fps`` is the average frame rate and ``n_frames``
    an estimate (the container's count, else ``duration * fps``).
    """

    path: str
    duration: float
    has_video: bool
    has_audio: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    rotation: int = 0
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_rate: int | None = None
    audio_channels: int | None = None
    n_frames: int | None = None


def normalize_rotation(degrees: float) -> int:
    """A display angle rounded to a multiple of 90 and brought into 0..270."""
    return int(round(float(degrees) / 90.0)) * 90 % 360


def legacy_rotation(metadata: dict[str, str]) -> int:
    """The counter-clockwise angle from an old ``rotate`` tag (which counts clockwise); 0 if absent."""
    try:
        return normalize_rotation(-float(metadata.get("rotate", 0)))
    except ValueError:
        return 0


def display_size(width: int, height: int, sar: object, rotation: int) -> tuple[int, int]:
    """The displayed (width, height) of a picture stored as ``width`` x ``height``."""
    w = width
    if sar is not None and getattr(sar, "numerator", 0) > 0 and sar != 1:
        w = max(1, round(width * float(sar)))
    return (height, w) if rotation in (90, 270) else (w, height)


def _first_frame_rotation(container, stream) -> int | None:
    """The rotation carried by the first decoded frame (its display-matrix side data)."""
    try:
        for frame in container.decode(stream):
            return normalize_rotation(frame.rotation)
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return None


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe the media file at ``path``; raises :class:`MediaError` when it is not usable media."""
    container = open_media(path)
    with container, translated(path, "reading the headers"):
        v = video_stream(container)
        a = audio_stream(container)

        durations = []
        if container.duration is not None and container.duration > 0:
            durations.append(container.duration / 1_000_000)
        for s in (v, a):
            if s is not None and s.duration and s.time_base:
                durations.append(float(s.duration * s.time_base))
        duration = max(durations) if durations else 0.0

        info: dict[str, object] = {}
        if v is not None:
            rate = v.average_rate or v.guessed_rate or v.base_rate
            fps = float(rate) if rate else None
            rotation = _first_frame_rotation(container, v) or legacy_rotation(dict(v.metadata))
            cc = v.codec_context
            w, h = display_size(cc.width, cc.height, cc.sample_aspect_ratio, rotation)
            v_dur = float(v.duration * v.time_base) if v.duration and v.time_base else duration
            n = v.frames if v.frames and v.frames > 0 else (round(v_dur * fps) if fps else None)
            info.update(width=w, height=h, fps=fps, rotation=rotation, video_codec=cc.name, n_frames=n)
        if a is not None:
            acc = a.codec_context
            info.update(audio_codec=acc.name, audio_rate=acc.sample_rate, audio_channels=acc.channels)
        return MediaInfo(
            path=str(path), duration=duration, has_video=v is not None, has_audio=a is not None, **info
        )
