"""Decoding and encoding of video and audio (PyAV), streamed with flat memory whatever the length.

- :func:`probe` -> :class:`MediaInfo`: duration, streams, displayed size, rotation, rates.
- :func:`iter_frames` -> :class:`VideoFrame` (index, time, upright RGB image), every frame or
  sampled at a rate by timestamp, optionally downscaled.
- :func:`read_audio` / :func:`iter_audio`: float32 mono at 16 kHz (or any rate).
- :func:`read_image` / :func:`is_image`: still pictures.
- :func:`write_video`: RGB frames to H.264 mp4, keeping another file's audio.
- :func:`set_limits` / :func:`media_limits`: the most a file may claim (frame size, duration, channels, rate),
  checked before decoding, so a decompression bomb is refused (:mod:`avemo.media.limits`).

Every failure on a file is an :class:`avemo.errors.MediaError` naming the file and the problem.
"""

from __future__ import annotations

from avemo.errors import MediaError
from avemo.media.audio import iter_audio, read_audio
from avemo.media.image import IMAGE_EXTENSIONS, is_image, read_image
from avemo.media.limits import MediaLimits, get_limits, media_limits, set_limits
from avemo.media.probe import MediaInfo, probe
from avemo.media.video import VideoFrame, iter_frames
from avemo.media.writer import write_video

__all__ = [
    "IMAGE_EXTENSIONS",
    "MediaError",
    "MediaInfo",
    "MediaLimits",
    "VideoFrame",
    "get_limits",
    "is_image",
    "iter_audio",
    "iter_frames",
    "media_limits",
    "probe",
    "read_audio",
    "read_image",
    "set_limits",
    "write_video",
]
