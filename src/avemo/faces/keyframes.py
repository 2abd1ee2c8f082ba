"""Key-frame selection after the operational neural network system of Aktürk & Keçeli (2024).

Their visual branch keeps a few informative frames per clip instead of all of them, chosen by a
cascade of cheap image statistics. :func:`select_key_frames` implements that cascade,
deterministically, on a sequence of frames (typically aligned face crops of one clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

DEFAULT_WEIGHTS = {"stability": 1.0, "brightness": 0.5, "entropy": 1.0, "sharpness": 2.0}


@dataclass
class KeyFrames:
    """The chosen frames: ``indices`` sorted ascending, and every stage's per-frame values.

    ``scores`` maps a stage name to an array with one value per input frame: ``luv_change``
    (raw), ``stability``, ``brightness_raw``, ``brightness``, ``entropy``, ``contrast``,
    ``sharpness_raw``, ``sharpness`` (the normalised ones in [0, 1]), ``cluster`` (k-means label),
    ``kept`` (1 if it passed the contrast filter) and ``score`` (the combination; -inf when filtered).
    """

    indices: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)


def _grey_small(frame: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(a, cv2.COLOR_GRAY2RGB) if a.ndim == 2 else a[:, :, :3]
    rgb = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA) if rgb.shape[:2] != (side, side) else rgb
    return np.ascontiguousarray(rgb), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _minmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo < 1e-12:
        return np.ones_like(x)
    return (x - lo) / (hi - lo)


def _rank01(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties share their mean rank); 1 for the best (largest)."""
    n = len(x)
    if n == 1:
        return np.ones(1)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.arange(n, dtype=np.float64)
    # average ties
    xs = np.asarray(x)
    for v in np.unique(xs):
        m = xs == v
        if m.sum() > 1:
            ranks[m] = ranks[m].mean()
    return ranks / (n - 1)


def _kmeans(x: np.ndarray, k: int, iters: int = 30) -> np.ndarray:
    """Deterministic k-means (farthest-point initialisation from the frame nearest the mean)."""
    n = len(x)
    k = max(1, min(k, n))
    start = int(np.argmin(((x - x.mean(axis=0)) ** 2).sum(axis=1)))
    centres = [x[start]]
    d = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        i = int(np.argmax(d))
        if d[i] <= 0:
            break
        centres.append(x[i])
        d = np.minimum(d, ((x - x[i]) ** 2).sum(axis=1))
    c = np.stack(centres)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        if _ > 0 and np.array_equal(new, labels):
            break
        labels = new
        for j in range(len(c)):
            if np.any(labels == j):
                c[j] = x[labels == j].mean(axis=0)
    return labels


def select_key_frames(
    frames: Sequence[np.ndarray],
    k: int = 1,
    *,
    prefer: str = "stable",
    n_clusters: int | None = None,
    min_contrast: float = 0.5,
    weights: dict[str, float] | None = None,
    side: int = 96,
) -> KeyFrames:
    """Choose ``k`` key frames from ``frames`` (RGB or grey arrays; sizes may differ).

    The stages (each computed on a ``side x side`` resized copy, so cost is independent of size):

    1. **LUV colour change.** Each frame is converted to CIE L*u*v* and compared with its
       neighbours: ``luv_change[i]`` is the mean absolute LUV difference to the previous and next
       frame (averaged where both exist). With ``prefer="stable"`` (the default) frames with
       *little* change score high: a stable frame sits inside an expression rather than in a
       transition, and carries less motion blur. ``prefer="peak"`` scores the peaks of change
       instead (expression onsets), for callers who want the moments of change.
    2. **Brightness ranking.** Mean grey level; frames are ranked by closeness to a well-exposed
       mid level (0.5), so under- and over-exposed frames rank low (``brightness`` in [0, 1]).
    3. **Entropy.** Shannon entropy of the 256-bin grey histogram (bits / 8): informative,
       detailed frames score high, flat ones low.
    4. **Contrast filtering with histogram clustering.** The grey histograms (32 bins) are
       clustered with a deterministic k-means (``n_clusters``; default ``max(k, min(4, n))``). In
       each cluster, frames whose RMS contrast (grey std) is below ``min_contrast`` x the cluster's
       median contrast are dropped (washed-out, faded or occluded variants). The selection then
       takes the best frame of each cluster in turn (clusters ordered by their best score), so the
       ``k`` key frames cover different appearances before any cluster gives a second frame.
    5. **Sharpness.** Variance of the Laplacian of the grey frame; its log is normalised to
       [0, 1] over the sequence, so blurred frames score low.

    The frame score is the weighted sum of the normalised stages (``weights``; default
    :data:`DEFAULT_WEIGHTS`, sharpness counting double). Ties break towards the earlier frame.

    Returns:
        :class:`KeyFrames`: ``indices`` (sorted, unique, ``min(k, n)`` of them) and ``scores``.
    """
    n = len(frames)
    if n == 0:
        return KeyFrames(indices=np.zeros(0, dtype=np.int64), scores={})
    if k < 1:
        raise ValueError("k must be at least 1")
    if prefer not in ("stable", "peak"):
        raise ValueError("prefer must be 'stable' or 'peak'")
    w = dict(DEFAULT_WEIGHTS)
    if weights:
        w.update(weights)

    luv = np.empty((n, side, side, 3), dtype=np.float32)
    greys = np.empty((n, side, side), dtype=np.uint8)
    for i, f in enumerate(frames):
        rgb, g = _grey_small(f, side)
        luv[i] = cv2.cvtColor(rgb, cv2.COLOR_RGB2LUV).astype(np.float32)
        greys[i] = g

    # 1. LUV change to the neighbours
    if n > 1:
        step = np.abs(np.diff(luv, axis=0)).mean(axis=(1, 2, 3))  # between i and i+1
        change = np.empty(n)
        change[0] = step[0]
        change[-1] = step[-1]
        if n > 2:
            change[1:-1] = (step[:-1] + step[1:]) / 2.0
    else:
        change = np.zeros(1)
    stability = 1.0 - _minmax(change) if prefer == "stable" else _minmax(change)
    if n == 1 or np.ptp(change) < 1e-9:
        stability = np.ones(n)

    # 2. brightness, ranked by closeness to mid-grey
    gf = greys.astype(np.float64) / 255.0
    bright_raw = gf.mean(axis=(1, 2))
    brightness = _rank01(-np.abs(bright_raw - 0.5))

    # 3. grey-histogram entropy
    hists = np.stack([np.bincount(g.ravel(), minlength=256) for g in greys]).astype(np.float64)
    p = hists / hists.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1) / 8.0

    # 4. contrast filter inside histogram clusters
    contrast = gf.std(axis=(1, 2))
    h32 = hists.reshape(n, 32, 8).sum(axis=2)
    h32 = h32 / h32.sum(axis=1, keepdims=True)
    nc = n_clusters if n_clusters is not None else max(k, min(4, n))
    labels = _kmeans(h32, nc)
    kept = np.ones(n, dtype=bool)
    for c in np.unique(labels):
        m = labels == c
        med = float(np.median(contrast[m]))
        kept[m & (contrast < min_contrast * med)] = False

    # 5. sharpness: variance of the Laplacian
    sharp_raw = np.array([cv2.Laplacian(g, cv2.CV_64F).var() for g in greys])
    sharpness = _minmax(np.log1p(sharp_raw))

    score = (
        w["stability"] * stability
        + w["brightness"] * brightness
        + w["entropy"] * _minmax(ent)
        + w["sharpness"] * sharpness
    )
    final = np.where(kept, score, -np.inf)
    if not kept.any():  # everything filtered: fall back to the raw score
        final = score.copy()

    # best frame per cluster in turn, clusters ordered by their best frame
    order = np.lexsort((np.arange(n), -final))  # by score desc, then index asc
    chosen: list[int] = []
    per_cluster: dict[int, list[int]] = {}
    for i in order:
        if np.isfinite(final[i]):
            per_cluster.setdefault(int(labels[i]), []).append(int(i))
    rounds = sorted(per_cluster.values(), key=lambda lst: (-final[lst[0]], lst[0]))
    depth = 0
    target = min(k, sum(len(v) for v in rounds))
    while len(chosen) < target:
        for lst in rounds:
            if depth < len(lst) and len(chosen) < target:
                chosen.append(lst[depth])
        depth += 1
    if len(chosen) < min(k, n):  # filtered frames only as a last resort
        for i in order:
            if int(i) not in chosen and len(chosen) < min(k, n):
                chosen.append(int(i))

    scores = {
        "luv_change": change,
        "stability": stability,
        "brightness_raw": bright_raw,
        "brightness": brightness,
        "entropy": ent,
        "contrast": contrast,
        "sharpness_raw": sharp_raw,
        "sharpness": sharpness,
        "cluster": labels,
        "kept": kept.astype(np.int64),
        "score": final,
    }
    return KeyFrames(indices=np.array(sorted(set(chosen)), dtype=np.int64), scores=scores)
