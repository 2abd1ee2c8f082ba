"""A face network's input, made without torch: aligned grey crops -> normalised views.

``face_input`` resizes ``(N, H, W)`` uint8 crops to the bundle's ``resize`` and normalises them;
``face_views`` cuts the test-time views the network sees (``none``: the centre ``crop``; ``flip``: it
and its mirror image; ``tencrop``: the centre and four corners, each with its mirror). The torch
training code cuts the same views through :func:`view_origins`.
"""

from __future__ import annotations

import numpy as np

TTA_MODES = ("none", "flip", "tencrop")


def face_input(crops: np.ndarray, *, size: int, mean: float, std: float) -> np.ndarray:
    """``(N, H, W)`` (or ``(H, W)``, or ``(N, H, W, 3)`` BGR) uint8 crops -> ``(N, 1, size, size)`` float32,
    ``(x / 255 - mean) / std``."""
    import cv2

    arr = np.asarray(crops)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] == 3:
        arr = np.stack([cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGR2GRAY) for a in arr])
    if arr.ndim != 3:
        raise ValueError(f"expected grey crops (N, H, W), got shape {np.asarray(crops).shape}")
    if arr.shape[0] and arr.shape[1:] != (size, size):
        interp = cv2.INTER_AREA if min(arr.shape[1:]) > size else cv2.INTER_LINEAR
        arr = np.stack([cv2.resize(np.ascontiguousarray(a), (size, size), interpolation=interp) for a in arr])
    x = arr.astype(np.float32).reshape(-1, 1, size, size) / 255.0
    return (x - np.float32(mean)) / np.float32(std)


def view_origins(size: int, crop: int, mode: str) -> list[tuple[int, int]]:
    """Top-left corners of the ``crop``-sized views of a ``size`` image (before mirroring)."""
    if mode not in TTA_MODES:
        raise ValueError(f"tta mode must be one of {TTA_MODES}, got {mode!r}")
    off = (size - crop) // 2
    if mode == "tencrop":
        return [(off, off), (0, 0), (0, size - crop), (size - crop, 0), (size - crop, size - crop)]
    return [(off, off)]


def face_views(x: np.ndarray, *, crop: int, mode: str) -> np.ndarray:
    """``(N, 1, S, S)`` -> ``(V, N, 1, crop, crop)``: the views of ``mode``, mirrored copies after the originals."""
    views = [x[:, :, r:r + crop, c:c + crop] for r, c in view_origins(x.shape[-1], crop, mode)]
    if mode != "none":
        views += [v[..., ::-1] for v in views]
    return np.ascontiguousarray(np.stack(views))
