"""``iter_frames``: decoded video frames as upright RGB arrays, streamed with flat memory.

Dataflow: demux -> threaded decode -> (optional) sampling at a fixed rate by timestamp ->
swscale (resize and RGB in one pass) -> rotation by the display matrix -> ``VideoFrame``.
Only the frames that are handed out are converted; at most two decoded frames are held.

Truncated or corrupt files: opening fails with :class:`MediaError` when the container's index
is missing (e.g. an mp4 cut before its ``moov`` atom, PyAV's and most encoders' default layout).
When the index is present but the data stops early (a "faststart" mp4 cut short, damaged
packets), every frame that can be decoded is yielded first, and then :class:`MediaError` says
the file "is truncated or corrupt". A reader that must not act on a partial video should
therefore consume the whole iterator before committing its results.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from avemo.errors import MediaError
from avemo.media.container import decode_checked, open_media, translated, video_stream
from avemo.media.limits import check_pixels
from avemo.media.probe import display_size, legacy_rotation, normalize_rotation

_EPS = 1e-6
#: ``skip_loop_filter`` applies only where key frames come at least this often (seconds, in the first
#: :data:`KEY_FRAME_LOOKAHEAD` seconds): without the filter the error drifts until the next key frame (a 60 s
#: H.264 file with a single key frame: half a level of 255 after 10 s, 3.4 after 50 s)
MAX_KEY_FRAME_GAP = 10.0
KEY_FRAME_LOOKAHEAD = 30.0
#: the decoders that honour ``skip_loop_filter`` (others, e.g. VP9, decode in full whatever it says)
LOOP_FILTER_CODECS = frozenset({"h264", "hevc"})


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: ``index`` counts the frames handed out (0, 1, 2, ...), ``time`` is its
    presentation time in seconds from the start of the video stream, ``image`` is H x W x 3 RGB uint8,
    upright."""

    index: int
    time: float
    image: np.ndarray


def _target_size(width: int, height: int, sar: object, max_side: int | None) -> tuple[int, int]:
    """The stored-orientation size to scale to: square pixels, longest side at most ``max_side``."""
    w, h = display_size(width, height, sar, 0)
    if max_side is not None and max(w, h) > max_side:
        scale = max_side / max(w, h)
        w, h = max(1, round(w * scale)), max(1, round(h * scale))
    return w, h


def iter_frames(
    path: str | os.PathLike[str],
    fps: float | None = None,
    *,
    max_side: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    skip_nonref: bool = False,
    skip_loop_filter: bool = False,
) -> Iterator[VideoFrame]:
    """The frames of the video at ``path`` between ``start`` and ``end`` seconds.

    ``fps=None`` gives every frame. With ``fps``, the frame nearest to each instant
    ``start + k / fps`` is given (ties go to the earlier frame); a frame is never repeated nor
    invented, so variable-frame-rate video and rates above the source's give fewer frames.
    ``max_side`` scales the image down (in the decoder's colour conversion) so its longest side
    is at most that. Rotated (phone) videos come out upright. ``skip_nonref`` lets the decoder drop
    frames no other frame depends on (B-frames): about a third less decoding for H.264, at the cost
    of sampling instants being matched to the nearest *remaining* frame (fine for fps well below
    the source rate). ``skip_loop_filter`` lets the decoder skip its in-loop deblocking filter (H.264,
    HEVC; VP9 ignores it): about a fifth less decoding CPU for H.264, while the pixels move by about half a
    level of 255 on average (the speed benchmark's videos at 640 px). The error drifts until the next key frame,
    so it is taken only where key frames come at least every :data:`MAX_KEY_FRAME_GAP` seconds
    (:func:`key_frame_gap`; otherwise the video is decoded in full).

    Argument errors raise :class:`ValueError`; the file is opened and checked at call time, so a
    missing, empty, non-media, image or video-less file raises :class:`MediaError` right away.
    """
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1, got {max_side!r}")
    if start < 0:
        raise ValueError(f"start must be >= 0, got {start!r}")
    if end is not None and end <= start:
        raise ValueError(f"end ({end!r}) must be after start ({start!r})")
    container = open_media(path, want="video")
    codec = video_stream(container).codec_context
    if skip_nonref:
        codec.skip_frame = "NONREF"
    if skip_loop_filter and codec.name in LOOP_FILTER_CODECS and key_frame_gap(path) <= MAX_KEY_FRAME_GAP:
        codec.options = {**codec.options, "skip_loop_filter": "all"}  # read when the decoder opens (first packet)
    return _frames(container, str(path), fps, max_side, float(start), end)


def key_frame_gap(path: str | os.PathLike[str], lookahead: float = KEY_FRAME_LOOKAHEAD) -> float:
    """The longest stretch (seconds) without a video key frame in the first ``lookahead`` seconds of ``path``
    (demuxed packets only, nothing decoded; the stretch after the last key frame counts up to the end of the
    look-ahead or of the stream); ``inf`` when the packets carry no times."""
    with open_media(path, want="video") as container:
        stream = video_stream(container)
        tb = stream.time_base
        origin = stream.start_time or 0
        keys, last = [], None
        try:
            for packet in container.demux(stream):
                if packet.pts is None or not tb:
                    continue
                t = float((packet.pts - origin) * tb)
                last = t if last is None else max(last, t)
                if packet.is_keyframe:
                    keys.append(t)
                if t > lookahead:
                    break
        except (av.error.FFmpegError, OSError):
            pass  # a damaged stream: judge by what was read (decoding reports the damage itself)
    if not keys or last is None:
        return math.inf
    keys.sort()
    gaps = np.diff([0.0, *keys, min(last, lookahead)])
    return float(gaps.max())


def _decoded(container, path: str, start: float, end: float | None) -> Iterator[tuple[object, float, float]]:
    """(av frame, time, duration) for the decoded frames in [start, end), times from the stream start."""
    stream = video_stream(container)
    stream.codec_context.thread_type = "AUTO"
    tb = stream.time_base
    origin = stream.start_time if stream.start_time is not None else 0
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    default_dur = 1.0 / float(rate) if rate else 1.0 / 25.0
    if start > 0 and tb:
        try:  # to the key frame before ``start``; frames before it are skipped below
            container.seek(origin + int(start / tb), stream=stream, backward=True)
        except (av.error.FFmpegError, OSError):
            pass  # not seekable: decode from the beginning instead
    last_t = None
    for frame in decode_checked(container, stream, path, "video"):
        if frame.pts is not None and tb:
            t = float((frame.pts - origin) * tb)
        else:
            t = 0.0 if last_t is None else last_t + default_dur
        last_t = t
        if t < start - _EPS:
            continue
        if end is not None and t >= end - _EPS:
            return
        dur = float(frame.duration * tb) if frame.duration and tb else default_dur
        yield frame, t, dur


def _sampled(frames: Iterator[tuple[object, float, float]], fps: float, start: float, end: float | None):
    """The frame nearest each instant ``start + k / fps``, each source frame at most once."""
    period = 1.0 / fps
    k = 0
    prev = None  # (seq, frame, t, dur)
    last_seq = -1
    seq = -1
    for seq, (frame, t, dur) in enumerate(frames):  # noqa: B007 (seq used after the loop)
        while True:
            target = start + k * period
            if end is not None and target >= end - _EPS:
                return
            if target > t + _EPS:
                break
            if prev is not None and target - prev[2] <= t - target:
                chosen = prev
            else:
                chosen = (seq, frame, t, dur)
            if chosen[0] > last_seq:
                last_seq = chosen[0]
                yield chosen[1], chosen[2]
            k += 1
        prev = (seq, frame, t, dur)
    # past the last frame: it still covers the instants inside its own duration
    if prev is not None and prev[0] > last_seq:
        target = start + k * period
        if target < prev[2] + prev[3] - _EPS and (end is None or target < end - _EPS):
            yield prev[1], prev[2]


def _frames(container, path: str, fps, max_side, start, end) -> Iterator[VideoFrame]:
    with container:
        stream = video_stream(container)
        rotation0 = legacy_rotation(dict(stream.metadata))
        sar = stream.codec_context.sample_aspect_ratio
        reformatter = VideoReformatter()
        decoded = _decoded(container, path, start, end)
        if fps is None:
            chosen = ((f, t) for f, t, _ in decoded)
        else:
            chosen = _sampled(decoded, fps, start, end)
        for index, (frame, t) in enumerate(chosen):
            check_pixels(path, frame.width, frame.height)  # a stream may change size after its header
            rotation = normalize_rotation(frame.rotation) or rotation0
            w, h = _target_size(frame.width, frame.height, sar, max_side)
            with translated(path, "converting a frame"):
                rgb = reformatter.reformat(
                    frame, width=w, height=h, format="rgb24", interpolation="BILINEAR"
                ).to_ndarray()
            if rotation:
                rgb = np.rot90(rgb, k=rotation // 90)
            yield VideoFrame(index=index, time=t, image=np.ascontiguousarray(rgb))


__all__ = ["MediaError", "VideoFrame", "iter_frames"]
