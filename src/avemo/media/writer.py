"""``write_video``: RGB frames to an H.264 mp4, optionally with another file's audio (AAC), streamed.

Dataflow: frames -> yuv420p -> libx264 -> mux, and, interleaved with them, the source audio
-> decode -> resample (float planar) -> AAC -> mux, cut at the video's end. Neither side is
held in memory: audio is pulled only as far as the video written so far.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from avemo.errors import MediaError
from avemo.media.container import audio_stream, decode_checked, open_media, translated
from avemo.media.video import VideoFrame

log = logging.getLogger(__name__)

_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000)


def _as_rgb(item: object, n: int) -> np.ndarray:
    img = item.image if isinstance(item, VideoFrame) else item
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"frame {n}: expected an H x W x 3 uint8 RGB array, got {img.dtype} {img.shape}")
    return img


def _even(img: np.ndarray) -> np.ndarray:
    """Pad by one edge pixel where a side is odd (yuv420p needs even sizes)."""
    h, w = img.shape[:2]
    if h % 2 or w % 2:
        img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return img


class _AudioCopy:
    """The audio of one file, re-encoded to AAC into ``out``; pulled on demand up to a time."""

    def __init__(self, source: str, out: av.container.OutputContainer) -> None:
        self.source = source
        self.inp = open_media(source, want="audio")
        src = audio_stream(self.inp).codec_context
        self.rate = src.sample_rate if src.sample_rate in _AAC_RATES else 48000
        layout = "stereo" if (src.channels or 1) >= 2 else "mono"
        self.stream = out.add_stream("aac", rate=self.rate)
        self.stream.layout = layout
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=self.rate)
        self.written = 0  # samples sent to the encoder
        self.layout = layout
        self._frames = self._decoded()
        self._pending: np.ndarray | None = None

    def _decoded(self) -> Iterator[av.AudioFrame]:
        with translated(self.source, "resampling the audio to copy"):
            for frame in decode_checked(self.inp, audio_stream(self.inp), self.source, "audio"):
                frame.pts = None
                yield from self.resampler.resample(frame)
            yield from self.resampler.resample(None)

    def packets_until(self, seconds: float) -> Iterator[av.Packet]:
        """Encoded packets for the audio up to ``seconds`` (never past it: the rest waits)."""
        limit = math.ceil(seconds * self.rate)
        while self.written < limit:
            if self._pending is None:
                frame = next(self._frames, None)
                if frame is None:
                    return
                self._pending = frame.to_ndarray()  # channels x samples, float planar
            take = min(self._pending.shape[1], limit - self.written)
            chunk = np.ascontiguousarray(self._pending[:, :take])
            self._pending = self._pending[:, take:] if take < self._pending.shape[1] else None
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts = self.written
            frame.time_base = Fraction(1, self.rate)
            self.written += take
            yield from self.stream.encode(frame)

    def flush(self) -> Iterator[av.Packet]:
        yield from self.stream.encode(None)

    def close(self) -> None:
        self.inp.close()


def write_video(
    path: str | os.PathLike[str],
    frames_iter: Iterable[np.ndarray | VideoFrame],
    fps: float,
    audio_from: str | os.PathLike[str] | None = None,
    *,
    crf: int = 23,
    preset: str = "veryfast",
) -> Path:
    """Encode RGB frames (arrays H x W x 3 uint8, or :class:`VideoFrame`) at ``fps`` to an H.264 mp4.

    All frames must share the first one's size (odd sides are padded by one pixel). With
    ``audio_from``, that file's audio is re-encoded to AAC into the output and cut at the video's
    end; a source without an audio track is logged and the video is written silent. Returns the
    output path. On any failure the partial output is removed and :class:`MediaError` (or
    :class:`ValueError` for bad frames/arguments) is raised.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    out_path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    audio: _AudioCopy | None = None
    try:
        with translated(out_path, "writing the video"):
            suffix = out_path.suffix.lower()
            options = {"movflags": "+faststart"} if suffix in (".mp4", ".mov", ".m4v") else {}
            with av.open(str(out_path), mode="w", options=options) as out:
                stream = out.add_stream("libx264", rate=rate)
                stream.pix_fmt = "yuv420p"
                stream.codec_context.options = {"crf": str(int(crf)), "preset": preset}
                if audio_from is not None:
                    try:
                        audio = _AudioCopy(str(audio_from), out)
                    except MediaError as exc:
                        if "no audio track" not in exc.problem:
                            raise
                        log.warning("%s: no audio to copy; writing the video without sound", audio_from)
                size = None
                n = 0
                for n, item in enumerate(frames_iter):  # noqa: B007 (n used after the loop)
                    img = _even(_as_rgb(item, n))
                    if size is None:
                        size = img.shape[:2]
                        stream.height, stream.width = size
                    elif img.shape[:2] != size:
                        raise ValueError(f"frame {n} is {img.shape[:2]}, the first frame was {size}")
                    vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                    vf.pts = n
                    vf.time_base = 1 / rate
                    for packet in stream.encode(vf):
                        out.mux(packet)
                    if audio is not None:
                        for packet in audio.packets_until((n + 1) / float(rate)):
                            out.mux(packet)
                if size is None:
                    raise ValueError("no frames to write")
                for packet in stream.encode(None):
                    out.mux(packet)
                if audio is not None:
                    for packet in audio.packets_until((n + 1) / float(rate)):
                        out.mux(packet)
                    for packet in audio.flush():
                        out.mux(packet)
    except BaseException:
        out_path.unlink(missing_ok=True)
        raise
    finally:
        if audio is not None:
            audio.close()
    return out_path


__all__ = ["write_video"]
