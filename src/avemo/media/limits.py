"""Limits on what a media file may claim, checked before anything is decoded: a decompression bomb (a tiny file
whose header claims a gigapixel frame or a century of duration) is refused with a :class:`MediaError` naming
the file, the claim and the limit, instead of running the machine out of memory.

The defaults admit every ordinary file (frames up to 8192 x 8192, 48 hours, 64 channels, 768 kHz) and are
changed for a process with :func:`set_limits` (or :func:`media_limits` for a block), or before start-up with
the environment variables ``AVEMO_MAX_PIXELS``, ``AVEMO_MAX_DURATION`` (seconds), ``AVEMO_MAX_CHANNELS`` and
``AVEMO_MAX_SAMPLE_RATE`` (for worker processes, such as ``avemo batch`` on Ray).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

from avemo.errors import AvemoError, MediaError

__all__ = ["MediaLimits", "check_audio", "check_duration", "check_pixels", "get_limits", "media_limits",
           "set_limits"]


@dataclass(frozen=True)
class MediaLimits:
    """The most a file may claim: pixels per frame or image, seconds, audio channels and sample rate."""

    max_pixels: int = 8192 * 8192
    max_duration: float = 48 * 3600.0
    max_channels: int = 64
    max_sample_rate: int = 768_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and value > 0):
                raise AvemoError(f"media limit {f.name} must be a positive number, got {value!r}")


def _from_environment() -> MediaLimits:
    names = {"max_pixels": ("AVEMO_MAX_PIXELS", int), "max_duration": ("AVEMO_MAX_DURATION", float),
             "max_channels": ("AVEMO_MAX_CHANNELS", int), "max_sample_rate": ("AVEMO_MAX_SAMPLE_RATE", int)}
    values = {}
    for field, (var, kind) in names.items():
        text = os.environ.get(var)
        if text:
            try:
                values[field] = kind(float(text))
            except ValueError:
                raise AvemoError(f"{var} must be a number, got {text!r}") from None
    return MediaLimits(**values)


_current = _from_environment()


def get_limits() -> MediaLimits:
    """The limits in force."""
    return _current


def set_limits(**changes: float) -> MediaLimits:
    """Change some limits for this process (``set_limits(max_duration=96 * 3600)``); returns the previous ones."""
    global _current
    previous = _current
    try:
        _current = dataclasses.replace(_current, **changes)
    except TypeError as exc:
        raise AvemoError(f"unknown media limit: {exc}") from None
    return previous


@contextlib.contextmanager
def media_limits(**changes: float) -> Iterator[MediaLimits]:
    """Other limits inside a ``with`` block."""
    previous = set_limits(**changes)
    try:
        yield _current
    finally:
        set_limits(**dataclasses.asdict(previous))


def check_pixels(path: object, width: int | None, height: int | None, what: str = "frames") -> None:
    """Refuse ``width`` x ``height`` pictures above ``max_pixels``."""
    if width and height and int(width) * int(height) > _current.max_pixels:
        raise MediaError(path, f"claims {width} x {height} {what} ({int(width) * int(height) / 1e6:.0f} megapixels), "
                               f"above the limit of {_current.max_pixels / 1e6:.0f} megapixels "
                               "(avemo.media.set_limits(max_pixels=...) or AVEMO_MAX_PIXELS)")


def check_duration(path: object, seconds: float | None) -> None:
    """Refuse a claimed duration above ``max_duration``."""
    if seconds is not None and seconds > _current.max_duration:
        raise MediaError(path, f"claims a duration of {seconds / 3600:.1f} hours, above the limit of "
                               f"{_current.max_duration / 3600:.1f} hours "
                               "(avemo.media.set_limits(max_duration=...) or AVEMO_MAX_DURATION)")


def check_audio(path: object, channels: int | None, sample_rate: int | None) -> None:
    """Refuse more audio channels or a higher sample rate than the limits."""
    if channels and channels > _current.max_channels:
        raise MediaError(path, f"claims {channels} audio channels, above the limit of {_current.max_channels}")
    if sample_rate and sample_rate > _current.max_sample_rate:
        raise MediaError(path, f"claims an audio rate of {sample_rate} Hz, above the limit of "
                               f"{_current.max_sample_rate} Hz")
