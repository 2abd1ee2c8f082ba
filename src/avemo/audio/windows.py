"""Fixed-length analysis windows over a clip, with their timestamps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from avemo.audio.dsp import as_mono_float32

_EPS = 1e-9


@dataclass(frozen=True)
class Window:
    """A time span in seconds from the start of the clip."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def center(self) -> float:
        return 0.5 * (self.start + self.end)


def make_windows(
    duration_s: float,
    window_s: float = 3.0,
    hop_s: float = 1.0,
    *,
    min_last_s: float | None = None,
) -> list[Window]:
    """Windows ``[k * hop_s, k * hop_s + window_s]`` covering ``[0, duration_s]`` entirely.

    A clip no longer than ``window_s`` gives one window ``[0, duration_s]``. Windows stop at the
    first one that reaches the end, whose end is clamped to ``duration_s`` (so it can be shorter
    than ``window_s``; :func:`frame_windows` zero-pads it). If that last window would be shorter
    than ``min_last_s`` (default ``window_s / 2``), it is moved back to end at ``duration_s`` with
    the full ``window_s`` length instead: the tail is never dropped.
    """
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    if window_s <= 0 or hop_s <= 0:
        raise ValueError(f"window_s and hop_s must be positive, got {window_s}, {hop_s}")
    if min_last_s is None:
        min_last_s = window_s / 2
    if duration_s <= window_s + _EPS:
        return [Window(0.0, float(duration_s))]
    out: list[Window] = []
    k = 0
    while True:
        start = k * hop_s
        end = start + window_s
        if end >= duration_s - _EPS:
            end = float(duration_s)
            if end - start < min_last_s - _EPS:
                start = end - window_s
            if not out or start > out[-1].start + _EPS:
                out.append(Window(round(start, 9), end))
            break
        out.append(Window(round(start, 9), round(end, 9)))
        k += 1
    return out


def frame_windows(
    wave: np.ndarray, sr: int, windows: Sequence[Window], *, window_s: float | None = None
) -> np.ndarray:
    """Cut ``windows`` out of a mono waveform: float32 ``(n, window_samples)``, zero-padded at the
    end where a window is shorter than ``window_s`` (default: the longest window) or runs past the
    waveform. Row ``i`` belongs to ``windows[i]``, whose timestamps stay the reference."""
    x = as_mono_float32(wave)
    if not windows:
        raise ValueError("no windows given")
    if window_s is None:
        window_s = max(w.duration for w in windows)
    n_win = int(round(window_s * sr))
    out = np.zeros((len(windows), n_win), dtype=np.float32)
    for i, w in enumerate(windows):
        a = max(0, int(round(w.start * sr)))
        b = min(x.size, a + min(n_win, int(round(w.duration * sr))))
        if b > a:
            out[i, : b - a] = x[a:b]
    return out
