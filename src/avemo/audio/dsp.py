"""Sample-rate conversion and amplitude normalisation for mono float waveforms."""

from __future__ import annotations

from math import gcd
from typing import Literal

import numpy as np


def as_mono_float32(wave: np.ndarray) -> np.ndarray:
    """A 1-D float32 copy-free view where possible; refuses anything but a mono waveform."""
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (T,), got shape {wave.shape}")
    if not np.issubdtype(wave.dtype, np.floating):
        raise ValueError(f"expected a float waveform in [-1, 1], got dtype {wave.dtype}")
    return np.ascontiguousarray(wave, dtype=np.float32)


def resample(wave: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) of a mono waveform; float32 out."""
    wave = as_mono_float32(wave)
    sr, target_sr = int(sr), int(target_sr)
    if sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {sr} -> {target_sr}")
    if sr == target_sr:
        return wave
    from scipy.signal import resample_poly

    g = gcd(sr, target_sr)
    return resample_poly(wave, target_sr // g, sr // g).astype(np.float32)


def normalize_amplitude(
    wave: np.ndarray,
    mode: Literal["peak", "rms"] = "peak",
    *,
    target: float | None = None,
    eps: float = 1e-5,
) -> np.ndarray:
    """Scale a waveform to a fixed level, so microphones with different gains look alike.

    ``mode="peak"``: the largest absolute sample becomes ``target`` (default 0.95).
    ``mode="rms"``: the root-mean-square becomes ``target`` (default 0.1, about -20 dBFS); if that
    would push the peak above 1.0 the gain is lowered so the peak is exactly 1.0 (no clipping).
    A waveform whose level is below ``eps`` (silence) is returned unscaled rather than blown up.
    """
    wave = as_mono_float32(wave)
    if mode == "peak":
        target = 0.95 if target is None else target
        level = float(np.max(np.abs(wave))) if wave.size else 0.0
    elif mode == "rms":
        target = 0.1 if target is None else target
        level = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    else:
        raise ValueError(f"mode must be 'peak' or 'rms', not {mode!r}")
    if target <= 0:
        raise ValueError("target must be positive")
    if level < eps:
        return wave.copy()
    gain = target / level
    if mode == "rms":
        peak = float(np.max(np.abs(wave)))
        gain = min(gain, 1.0 / peak)
    return (wave * gain).astype(np.float32)
