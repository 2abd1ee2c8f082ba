"""Calibrated late fusion: per-modality temperature scaling, then a weighted log-linear pool (numpy).

Dataflow::

    face probs (any label set) ──► onto EMOTIONS (calm inherits neutral when the model has no calm)
                                      ──► temperature T_face ──┐
    voice probs (EMOTIONS)     ──► temperature T_voice ───────┴─► p ∝ Π_m p̃_m^(w_m) ──► fused probs

``p̃_m = softmax(log p_m / T_m)`` is modality ``m``'s calibrated distribution; with one modality
present the output is exactly that modality's calibrated distribution, with none it is NaN. The
temperatures and weights are fitted on held-out *training* speakers (see
:mod:`avemo.training.fusion`). :class:`LateFusion` is what a fusion bundle runs at analysis time;
:class:`avemo.models.fusion.calibrated.CalibratedLateFusion` is the same rule as a torch module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from avemo.labels import EMOTIONS, project_probs

FLOOR = 1e-4


def onto_emotions(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Probabilities over ``labels`` re-expressed over :data:`EMOTIONS`, renormalised.

    A model without *calm* (FER-2013's seven classes) cannot tell calm from neutral, so calm gets
    the same evidence as neutral instead of zero (the same convention as :func:`avemo.labels.collapse_calm`).
    """
    out = project_probs(np.asarray(probs, dtype=np.float32), labels, EMOTIONS)
    if "calm" not in labels and "neutral" in labels:
        out[..., EMOTIONS.index("calm")] = out[..., EMOTIONS.index("neutral")]
    return out / np.clip(out.sum(-1, keepdims=True), 1e-12, None)


def present(probs: Mapping[str, object | None], modalities: Sequence[str]) -> dict[str, object]:
    """The modalities given (not None), checked against those a fusion knows; at least one is needed."""
    given = {m: p for m, p in probs.items() if p is not None}
    unknown = set(given) - set(modalities)
    if unknown:
        raise ValueError(f"unknown modalities {sorted(unknown)}; this fusion knows {tuple(modalities)}")
    if not given:
        raise ValueError("every modality is absent: at least one input is needed")
    return given


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class LateFusion:
    """The fusion rule with fixed temperatures and weights (see the module docstring)."""

    def __init__(self, *, modalities: Sequence[str], temperatures: Mapping[str, float],
                 weights: Mapping[str, float]) -> None:
        self.modalities = tuple(modalities)
        self.temperatures = {m: float(temperatures[m]) for m in self.modalities}
        self.weights = {m: float(weights[m]) for m in self.modalities}

    def calibrate(self, modality: str, probs: np.ndarray) -> np.ndarray:
        """Log of modality ``modality``'s probabilities (N, K) after its temperature."""
        logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), FLOOR, None))
        return _log_softmax(logp / self.temperatures[modality])

    def fuse(self, probs: Mapping[str, np.ndarray | None], labels: Mapping[str, Sequence[str]] | None = None
             ) -> np.ndarray:
        """Probabilities per modality (over ``labels[m]``, default EMOTIONS; NaN rows where absent) ->
        fused probabilities over EMOTIONS (NaN rows where no modality is present)."""
        given = present(probs, self.modalities)
        n = len(next(iter(given.values())))
        total = np.zeros((n, len(EMOTIONS)))
        single = np.zeros((n, len(EMOTIONS)))
        count = np.zeros(n)
        for m, p in given.items():
            q = np.asarray(p, dtype=np.float32)
            ok = ~np.isnan(q).any(-1)
            src = tuple((labels or {}).get(m, EMOTIONS))
            q = onto_emotions(np.nan_to_num(q), src) if src != EMOTIONS else np.nan_to_num(q, nan=1.0 / q.shape[-1])
            logp = self.calibrate(m, q)
            total += np.where(ok[:, None], self.weights[m] * logp, 0.0)
            single = np.where(ok[:, None], logp, single)
            count += ok
        # one modality present: its calibrated distribution as it is (no weight)
        out = np.exp(_log_softmax(np.where((count == 1)[:, None], single, total)))
        out[count == 0] = np.nan
        return out.astype(np.float32)
