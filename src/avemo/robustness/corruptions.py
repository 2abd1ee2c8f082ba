"""Input corruptions for robustness tests: audio noise at a given SNR, the channel (gain, telephone band,
lossy codec) and face occlusion."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["add_noise", "change_gain", "codec_round_trip", "occlude", "telephone_band"]

ArrayLike = np.ndarray | torch.Tensor


def add_noise(wave: np.ndarray, snr_db: float, *, noise: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """``wave`` plus noise scaled so that signal power / noise power is ``snr_db`` decibels.

    ``noise`` (e.g. a recording of babble or street noise) is tiled or cut to the signal's length;
    white Gaussian noise by default. A silent signal is returned unchanged.
    """
    x = np.asarray(wave, dtype=np.float32)
    if noise is None:
        n = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
    else:
        n = np.resize(np.asarray(noise, dtype=np.float32), x.shape)
    p_signal, p_noise = float(np.mean(x**2)), float(np.mean(n**2))
    if p_signal == 0 or p_noise == 0:
        return x.copy()
    scale = np.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    return (x + scale * n).astype(np.float32)


def change_gain(wave: np.ndarray, db: float) -> np.ndarray:
    """``wave`` scaled by ``db`` decibels and clipped to [-1, 1] (a louder or quieter microphone)."""
    return np.clip(np.asarray(wave, dtype=np.float32) * np.float32(10 ** (db / 20)), -1.0, 1.0)


def telephone_band(wave: np.ndarray, sample_rate: int, low: float = 300.0, high: float = 3400.0) -> np.ndarray:
    """``wave`` through a 4th-order Butterworth band-pass (default: the 300-3400 Hz telephone band)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [low, min(high, 0.45 * sample_rate)], btype="bandpass", fs=sample_rate, output="sos")
    return sosfiltfilt(sos, np.asarray(wave, dtype=np.float64)).astype(np.float32)


def codec_round_trip(wave: np.ndarray, sample_rate: int, codec: str = "libmp3lame", bitrate: int = 32000
                     ) -> np.ndarray:
    """``wave`` encoded with a lossy ``codec`` (``libmp3lame`` or ``libopus``, through PyAV) at ``bitrate``
    and decoded again, at the same rate, length and alignment (both decoders drop their priming samples;
    FFmpeg's AAC does not, so it is not offered)."""
    if codec not in ("libmp3lame", "libopus"):
        raise ValueError(f"codec must be libmp3lame or libopus, not {codec!r}")
    import io

    import av

    from avemo.media.audio import _pieces

    x = np.asarray(wave, dtype=np.float32)
    buf = io.BytesIO()
    fmt = {"libmp3lame": "mp3", "libopus": "ogg"}[codec]
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=sample_rate if codec != "libopus" else 48000, layout="mono")
        stream.bit_rate = bitrate
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=stream.rate)
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate = sample_rate
        for f in resampler.resample(frame) + resampler.resample(None):
            for pkt in stream.encode(f):
                out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    buf.seek(0)
    parts = list(_pieces(av.open(buf), f"<{codec} round trip>", sample_rate))  # avemo.media's decode + resample
    y = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)]


_REGIONS = {  # (top, left) of the occluder as a fraction of the free space; None = random
    "upper": (0.0, 0.5), "lower": (1.0, 0.5), "left": (0.5, 0.0), "right": (0.5, 1.0), "centre": (0.5, 0.5),
}


def occlude(frames: ArrayLike, *, fraction: float = 0.25, region: str = "random", value: float = 0.0,
            seed: int = 0, channels_last: bool = False) -> ArrayLike:
    """Cover a square patch of area ``fraction`` of every face crop with ``value``.

    ``frames`` is ``(..., H, W)`` (channel-first, e.g. a model's ``(B, T, C, H, W)`` input) or, with
    ``channels_last=True``, ``(..., H, W, C)`` images. ``region`` is ``"upper"`` (eyes), ``"lower"``
    (mouth), ``"left"``, ``"right"``, ``"centre"`` or ``"random"`` (one place for the whole array,
    from ``seed``). Returns a copy of the same type.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], not {fraction}")
    out = frames.clone() if isinstance(frames, torch.Tensor) else np.array(frames, copy=True)
    h_axis, w_axis = (-3, -2) if channels_last else (-2, -1)
    h, w = out.shape[h_axis], out.shape[w_axis]
    side_h, side_w = round(h * np.sqrt(fraction)), round(w * np.sqrt(fraction))
    if region == "random":
        rng = np.random.default_rng(seed)
        fy, fx = rng.random(), rng.random()
    elif region in _REGIONS:
        fy, fx = _REGIONS[region]
    else:
        raise ValueError(f"unknown region {region!r}; use random or one of {sorted(_REGIONS)}")
    top, left = round((h - side_h) * fy), round((w - side_w) * fx)
    if channels_last:
        out[..., top:top + side_h, left:left + side_w, :] = value
    else:
        out[..., top:top + side_h, left:left + side_w] = value
    return out
