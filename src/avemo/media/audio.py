"""``read_audio`` / ``iter_audio``: the audio track as float32 mono at a chosen rate, streamed.

Dataflow: demux -> decode -> ``av.AudioResampler`` (downmix to mono, resample, float) -> chunks.
Memory is bounded by one chunk for :func:`iter_audio`; :func:`read_audio` returns the whole
track. A truncated file raises :class:`MediaError` where decoding fails (``iter_audio`` has
yielded the chunks before that point).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import av
import numpy as np

from avemo.errors import MediaError
from avemo.media.container import audio_stream, decode_checked, open_media, translated


def _check_rate(sample_rate: int) -> int:
    if int(sample_rate) != sample_rate or sample_rate < 1000:
        raise ValueError(f"sample_rate must be an integer >= 1000 Hz, got {sample_rate!r}")
    return int(sample_rate)


def _mono(planes: np.ndarray) -> np.ndarray:
    """channels x samples float planar -> float32 mono (the mean of the channels)."""
    if planes.shape[0] == 1:
        return planes[0]
    return planes.mean(axis=0, dtype=np.float32)


def _pieces(container, path: str, sample_rate: int) -> Iterator[np.ndarray]:
    """Resampled float32 mono pieces (one per decoded frame) of the first audio stream."""
    with container:
        stream = audio_stream(container)
        # up to stereo: resample each channel and average them (the usual mono downmix);
        # surround: let libswresample fold it down with its standard mixing matrix
        layout = "mono" if (stream.codec_context.channels or 1) > 2 else None
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=sample_rate)
        with translated(path, "resampling the audio"):
            for frame in decode_checked(container, stream, path, "audio"):
                frame.pts = None  # timestamps are not needed and gaps would confuse the resampler
                for out in resampler.resample(frame):
                    yield _mono(out.to_ndarray())
            for out in resampler.resample(None):
                yield _mono(out.to_ndarray())


def iter_audio(
    path: str | os.PathLike[str], sample_rate: int = 16000, chunk_seconds: float = 10.0, *,
    start: float = 0.0, end: float | None = None,
) -> Iterator[np.ndarray]:
    """The audio of ``path`` as consecutive float32 mono chunks of ``chunk_seconds`` (the last shorter).

    Values are in [-1, 1]. The file is opened and checked at call time: a missing, empty or
    non-media file, or one without audio ("has no audio track"), raises :class:`MediaError` at once.
    ``start`` / ``end``: only the samples from ``start`` to ``end`` seconds of the track (decoded from its
    beginning: audio decodes fast, and counting samples keeps the sound aligned with the picture as the rest of
    avemo reads it).
    """
    sample_rate = _check_rate(sample_rate)
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"need 0 <= start < end, got start {start!r}, end {end!r}")
    chunk = max(1, round(chunk_seconds * sample_rate))
    container = open_media(path, want="audio")
    pieces = _pieces(container, str(path), sample_rate)
    if start > 0 or end is not None:
        pieces = _trimmed(pieces, round(start * sample_rate), None if end is None else round(end * sample_rate))
    return _chunks(pieces, chunk)


def _trimmed(pieces: Iterator[np.ndarray], first: int, stop: int | None) -> Iterator[np.ndarray]:
    """Samples ``first`` to ``stop`` (exclusive; None: the end) of the stream of pieces."""
    at = 0
    for piece in pieces:
        a, b = max(first - at, 0), len(piece) if stop is None else min(len(piece), stop - at)
        at += len(piece)
        if b > a:
            yield piece[a:b]
        if stop is not None and at >= stop:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # the container closes with its generator
            return


def _chunks(pieces: Iterator[np.ndarray], chunk: int) -> Iterator[np.ndarray]:
    buf = np.empty(chunk, dtype=np.float32)
    filled = 0
    for piece in pieces:
        pos = 0
        while pos < len(piece):
            take = min(chunk - filled, len(piece) - pos)
            buf[filled : filled + take] = piece[pos : pos + take]
            filled += take
            pos += take
            if filled == chunk:
                yield np.clip(buf, -1.0, 1.0)
                filled = 0
    if filled:
        yield np.clip(buf[:filled], -1.0, 1.0)


def read_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> np.ndarray:
    """The whole audio track of ``path`` as a float32 mono array in [-1, 1] at ``sample_rate`` Hz.

    Raises :class:`MediaError` for a missing, empty, truncated or non-media file and for a file
    that "has no audio track".
    """
    sample_rate = _check_rate(sample_rate)
    container = open_media(path, want="audio")
    parts = list(_pieces(container, str(path), sample_rate))
    if not parts:
        raise MediaError(path, "has an audio track that decodes to no samples")
    out = np.concatenate(parts).astype(np.float32, copy=False)
    return np.clip(out, -1.0, 1.0, out=out)


__all__ = ["iter_audio", "read_audio"]
