"""Input corruptions for robustness tests: audio noise at a given SNR and face occlusion."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["add_noise", "occlude"]

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
