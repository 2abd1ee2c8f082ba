"""Faces as video delivers them, for training the face network: camera-like degradations, occlusions, CutMix.

The face network of ``face.fer2013`` learnt clean 48×48 web photos. Faces from a talking-face video reach it
blurred, compressed, resampled from another size, under dim light, and with the mouth moving with speech.
The face runner (:class:`avemo.training.fer.FaceTask`) applies these to its batches when a recipe's
``augment`` asks (``video_p``, ``mouth_p``, ``cutmix_p``); ``benchmarks/face_crossdomain.py`` renders its
evaluation rows with the same families (:mod:`avemo.training.fer_faces`).

Dataflow of a batch::

    uint8 (B, 48, 48) ──► camera degradation, per face with probability ``video_p`` (one of: Gaussian blur,
        resampling through 14–32 px, sensor noise, low light (gamma, gain, noise), JPEG at 4× size)
        ──► mouth occlusion (``mouth_p``) ──► fer.augment_batch ──► CutMix (``cutmix_p``) ──► soft targets
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

DEFAULTS: dict[str, Any] = {
    "name": "face_fer2013_video",
    "seed": 0,
    "data": None,
    "model": {"architecture": "face", "kwargs": {"widths": [32, 64, 128, 256], "blocks": [1, 1, 1],
                                                  "dropout": 0.3, "num_classes": 7}},
    "init": "face.fer2013",  # a bundle name/folder or a state-dict file; None: from scratch
    "train": {"epochs": 40, "time_budget_min": 80, "batch_size": 128, "lr": 0.03, "momentum": 0.9,
              "nesterov": True, "weight_decay": 5e-4, "warmup": 0.05, "label_smoothing": 0.1, "bf16": True,
              "threads": 2, "eval_every": 2, "ema": 0.998},
    "augment": {"size": 48, "crop": 44, "rotate": 15.0, "scale": [0.85, 1.15], "shift": 3.0, "flip": True,
                "brightness": 0.2, "contrast": 0.25, "erase_p": 0.3, "erase_area": [0.02, 0.2]},
    "video": {"p": 0.5, "mouth_p": 0.08},
    "cutmix": {"p": 0.5, "alpha": 1.0},
}

DEGRADATIONS = ("blur", "resample", "noise", "lowlight", "jpeg")


def degrade_face(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One camera-like degradation of a uint8 grey face (any size), drawn from ``rng``; same shape back.

    ``blur``: Gaussian, sigma 0.4–1.3 px of a 48 px face; ``resample``: down to 14–32 px and back
    (a small face in a large frame); ``noise``: Gaussian sensor noise, sigma 2–12 grey levels;
    ``lowlight``: gamma 1.3–2.2, gain 0.35–0.8, then noise; ``jpeg``: upscaled 4×, JPEG quality 10–50,
    back down (blocking as a compressed video frame has it).
    """
    h, w = img.shape[:2]
    s = w / 48.0
    x = img.astype(np.float32)
    if kind == "blur":
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.4, 1.3)) * s)
    elif kind == "resample":
        side = int(rng.integers(14, 33))
        small = cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC)
    elif kind == "noise":
        x = x + rng.normal(0.0, rng.uniform(2.0, 12.0), x.shape).astype(np.float32)
    elif kind == "lowlight":
        x = 255.0 * (x / 255.0) ** rng.uniform(1.3, 2.2) * rng.uniform(0.35, 0.8)
        x = x + rng.normal(0.0, rng.uniform(1.0, 6.0), x.shape).astype(np.float32)
    elif kind == "jpeg":
        big = cv2.resize(img, (w * 4, h * 4), interpolation=cv2.INTER_CUBIC)
        ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(10, 51))])
        if ok:
            x = cv2.resize(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), (w, h), interpolation=cv2.INTER_AREA)
            x = x.astype(np.float32)
    else:
        raise ValueError(f"unknown degradation {kind!r}; one of {DEGRADATIONS}")
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def occlude_mouth(img: np.ndarray, value: int | None = None) -> np.ndarray:
    """The lower face (FER framing: rows from 0.66 of the height, columns 0.2–0.8) set to one grey."""
    out = img.copy()
    h, w = img.shape[:2]
    r0, c0, c1 = int(round(0.66 * h)), int(round(0.2 * w)), int(round(0.8 * w))
    out[r0:, c0:c1] = int(img.mean()) if value is None else value
    return out


def occlude_eyes(img: np.ndarray, value: int | None = None) -> np.ndarray:
    """A band over both eyes (FER framing: eyes at 0.40 of the height) set to one grey."""
    out = img.copy()
    h, w = img.shape[:2]
    r0, r1, c0, c1 = int(round(0.29 * h)), int(round(0.50 * h)), int(round(0.12 * w)), int(round(0.88 * w))
    out[r0:r1, c0:c1] = int(img.mean()) if value is None else value
    return out


def video_batch(x: np.ndarray, p: float, mouth_p: float, rng: np.random.Generator) -> np.ndarray:
    """Camera degradations (each face with probability ``p``) and mouth occlusion (``mouth_p``) over a uint8
    batch ``(B, 48, 48)`` (a new array)."""
    out = x.copy()
    for i in range(len(out)):
        if rng.random() < p:
            out[i] = degrade_face(out[i], DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))], rng)
        if rng.random() < mouth_p:
            out[i] = occlude_mouth(out[i])
    return out


def cutmix(x: torch.Tensor, y: torch.Tensor, n_classes: int, p: float, alpha: float, smoothing: float,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019) on a normalised batch: soft targets ``(B, C)`` (with label smoothing)."""
    b, _, h, w = x.shape
    target = F.one_hot(y, n_classes).float() * (1 - smoothing) + smoothing / n_classes
    if p <= 0 or float(torch.rand(1, generator=gen)) >= p:
        return x, target
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 0.5
    perm = torch.randperm(b, generator=gen)
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / float(h * w)
    return x, lam * target + (1 - lam) * target[perm]
