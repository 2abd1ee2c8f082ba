"""The blendshape member of the face model, and how it joins the crop network: torch-free (numpy only).

Dataflow::

    Face (MediaPipe: 52 blendshapes, pose, 478 landmarks) ──► expression_features (N_FEATURES)
        ──► standardise (training mean / std; missing values → the mean) ──► MLP (ReLU) or linear
        ──► softmax over BASIC7                                          = the blendshape member
    crop network probabilities ─┐
    blendshape member ──────────┴─► weighted log-linear pool (member weights) ──► face probabilities

A face without landmarks or blendshapes (a Haar face, one carried by optical flow without them) falls
back to the crop network alone; :func:`combine_members` says which members each face rests on.
Window pooling of frame probabilities is :func:`pool_frames`. A face bundle with a blendshape member
(``face.fervideo``) is run by :class:`avemo.inference.predictors.FacePredictor`.

The weights are plain arrays in one ``.npz`` (``blendshape_classifier.npz``): ``feature_names`` (checked
against :func:`avemo.faces.expression_features.feature_names` on load), ``labels``, ``mean``, ``std``,
``W0, b0, W1, b1, ...``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.errors import ModelError
from avemo.faces.expression_features import face_features, feature_names


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class BlendshapeClassifier:
    """Expression features → class probabilities; ``layers`` is ``[(W, b), ...]``, ReLU between them."""

    labels: tuple[str, ...]
    feature_names: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]

    def logits(self, features: np.ndarray) -> np.ndarray:
        """``(N, F)`` (or ``(F,)``) features → ``(N, C)`` logits; NaN inputs count as the training mean."""
        x = np.asarray(features, dtype=np.float32)
        if x.shape[-1] != len(self.feature_names):
            raise ModelError(f"blendshape classifier expects {len(self.feature_names)} features, got {x.shape[-1]}")
        x = (x.reshape(-1, x.shape[-1]) - self.mean) / self.std
        x = np.where(np.isfinite(x), x, 0.0).astype(np.float32)
        for i, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return x

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, C)`` in the order of ``labels``."""
        return _softmax(self.logits(features)).astype(np.float32)

    def predict_faces(self, faces: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities for :class:`avemo.faces.Face` objects and a mask of those that had features
        (rows of the others are NaN)."""
        feats = [face_features(f) for f in faces]
        ok = np.array([f is not None for f in feats], dtype=bool)
        out = np.full((len(faces), len(self.labels)), np.nan, np.float32)
        if ok.any():
            out[ok] = self.predict_proba(np.stack([f for f in feats if f is not None]))
        return out, ok

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"labels": np.array(self.labels), "feature_names": np.array(self.feature_names),
                  "mean": self.mean, "std": self.std}
        for i, (w, b) in enumerate(self.layers):
            arrays[f"W{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> BlendshapeClassifier:
        """Read a classifier saved by :meth:`save`; its feature names must be today's, in today's order."""
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: blendshape classifier file not found")
        with np.load(path, allow_pickle=False) as z:
            names = tuple(str(n) for n in z["feature_names"])
            if names != feature_names():
                raise ModelError(f"{path}: its input features ({len(names)}) are not avemo's expression features "
                                 f"({len(feature_names())}) in the same order")
            layers, i = [], 0
            while f"W{i}" in z.files:
                layers.append((z[f"W{i}"].astype(np.float32), z[f"b{i}"].astype(np.float32)))
                i += 1
            return cls(labels=tuple(str(v) for v in z["labels"]), feature_names=names,
                       mean=z["mean"].astype(np.float32), std=z["std"].astype(np.float32), layers=tuple(layers))


def combine_members(crop_probs: np.ndarray, blend_probs: np.ndarray | None, weights: dict[str, float],
                    *, bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The face probabilities from the crop network and the blendshape member (same label order).

    ``p ∝ exp(w_crop · log p_crop + w_blend · log p_blend + bias)`` per face. Rows of ``blend_probs`` that
    are NaN (no landmarks) use the crop network alone, ``p ∝ exp(w_crop · log p_crop + bias)``.
    Returns ``(probs, used_blendshapes)``: the mask says which faces rest on both members.
    """
    crop = np.clip(np.asarray(crop_probs, dtype=np.float64), 1e-7, 1.0)
    z = float(weights.get("crop", 1.0)) * np.log(crop)
    used = np.zeros(len(crop), dtype=bool)
    if blend_probs is not None and float(weights.get("blendshapes", 0.0)) != 0.0:
        bp = np.asarray(blend_probs, dtype=np.float64)
        used = np.isfinite(bp).all(axis=1)
        z[used] += float(weights["blendshapes"]) * np.log(np.clip(bp[used], 1e-7, 1.0))
    if bias is not None:
        z = z + np.asarray(bias, dtype=np.float64)
    return _softmax(z).astype(np.float32), used


POOLING_RULES = ("mean", "logmean", "confidence", "median")


def pool_frames(probs: np.ndarray, rule: str = "mean") -> np.ndarray:
    """A window's probabilities from its frames' ``(T, C)`` probabilities (NaN rows skipped).

    ``mean``: mean of probabilities; ``logmean``: normalised geometric mean (mean of log-probabilities);
    ``confidence``: mean weighted by each frame's margin (top-1 minus top-2 probability) plus 0.05;
    ``median``: per-class median, renormalised. All NaN (or no frames): a NaN row.
    """
    if rule not in POOLING_RULES:
        raise ValueError(f"pooling rule must be one of {POOLING_RULES}, got {rule!r}")
    p = np.asarray(probs, dtype=np.float64)
    p = p[np.isfinite(p).all(axis=1)] if p.ndim == 2 else p[None]
    c = np.asarray(probs).shape[-1]
    if len(p) == 0:
        return np.full(c, np.nan, np.float32)
    if rule == "mean":
        out = p.mean(0)
    elif rule == "logmean":
        out = np.exp(np.log(np.clip(p, 1e-7, 1.0)).mean(0))
    elif rule == "confidence":
        s = np.sort(p, axis=1)
        w = s[:, -1] - (s[:, -2] if c > 1 else 0.0) + 0.05
        out = (p * w[:, None]).sum(0) / w.sum()
    else:
        out = np.median(p, axis=0)
    return (out / out.sum()).astype(np.float32)
