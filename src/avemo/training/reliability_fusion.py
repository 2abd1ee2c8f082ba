"""Fitting the reliability-weighted fusion (:class:`avemo.models.fusion.reliability.ReliabilityFusion`).

The coefficients ``θ_m`` (a bias and one weight per evidence column of each modality) minimise the weighted
negative log-likelihood of the fused probabilities over each example's own classes (a corpus's absent classes
are not negatives; a gated modality sits out where its gate is closed, as at run time), plus an L2 pull of the
evidence weights towards 0, by L-BFGS (torch, float64). A flag's coefficient is kept non-negative: the
training corpora differ in how they were cut (RAVDESS clips are half silence, CASIA's nearly all speech) and in
how well the voice does on them, so a free coefficient would learn the corpus, not the window. Only examples
with two or more modalities present carry information (one modality: the fusion returns it unchanged).
:func:`fit_global` fits the same pool with one constant weight per modality (no evidence), for comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from avemo.labels import EMOTIONS
from avemo.models.fusion.reliability import FLAGS, GATES, PROB_FEATURES, ReliabilityFusion, log_onto_emotions


@dataclass
class FusionData:
    """Examples for fitting or scoring a fusion: ``probs[m]`` ``(N, K_m)`` over ``labels[m]`` (NaN rows: absent),
    ``flags[m]`` ``(N, F_m)`` (or absent: the defaults), ``y`` ``(N,)`` EMOTIONS indices, ``classes`` ``(N, 8)`` bool
    (the classes an example is scored over), ``weight`` ``(N,)``."""

    probs: dict[str, np.ndarray]
    labels: dict[str, tuple[str, ...]]
    flags: dict[str, np.ndarray]
    y: np.ndarray
    classes: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    @staticmethod
    def concat(parts: Sequence[FusionData]) -> FusionData:
        """Examples of several sets one after the other (a modality missing from a set is absent there)."""
        mods = list(dict.fromkeys(m for p in parts for m in p.probs))
        labels = {}
        for m in mods:
            found = {p.labels[m] for p in parts if m in p.labels}
            if len(found) != 1:
                raise ValueError(f"{m}: different label sets {found}")
            labels[m] = found.pop()
        probs = {m: np.concatenate([p.probs[m] if m in p.probs else np.full((len(p), len(labels[m])), np.nan)
                                    for p in parts]) for m in mods}
        flags = {}
        for m in mods:
            f = len(FLAGS.get(m, ()))
            flags[m] = np.concatenate([p.flags[m] if m in p.flags else np.full((len(p), f), np.nan) for p in parts])
        return FusionData(probs, labels, flags, np.concatenate([p.y for p in parts]),
                          np.concatenate([p.classes for p in parts]), np.concatenate([p.weight for p in parts]))


def _design(data: FusionData, modalities: Sequence[str], flag_defaults: Mapping[str, Sequence[float]],
            features: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per modality: evidence (N, len(features) + F), log-scores over EMOTIONS (N, 8) and presence (N,)."""
    probe = ReliabilityFusion(modalities=modalities, flags={m: FLAGS.get(m, ()) for m in modalities},
                              flag_defaults=flag_defaults, prob_features=features, gates=GATES,
                              coefficients={m: np.zeros(1 + len(features) + len(FLAGS.get(m, ())))
                                            for m in modalities})
    ok = probe.pooled({m: ~np.isnan(data.probs[m]).any(1) for m in modalities}, data.flags)
    ev, logs = {}, {}
    for m in modalities:
        p = data.probs[m]
        ev[m] = probe.evidence(m, p, data.flags.get(m), data.labels[m])
        logs[m] = np.where(ok[m][:, None], log_onto_emotions(np.nan_to_num(p, nan=1.0), data.labels[m]), 0.0)
    return ev, logs, ok


def flag_defaults_of(data: FusionData, modalities: Sequence[str]) -> dict[str, list[float]]:
    """Each flag's mean where its modality is present and the flag given (1.0 when never given)."""
    out = {}
    for m in modalities:
        vals = []
        for j in range(len(FLAGS.get(m, ()))):
            f = data.flags.get(m)
            col = f[:, j] if f is not None else np.array([])
            col = col[np.isfinite(col)] if col.size else col
            vals.append(float(col.mean()) if col.size else 1.0)
        out[m] = vals
    return out


def _slope(theta, use_evidence: bool, n: int):
    """The evidence coefficients: free for the ``n`` probability features, non-negative for the flags (more frames
    with landmarks, more speech in the window never lower a modality's weight), all 0 without evidence."""
    import torch

    slope = torch.cat([theta[1:1 + n], torch.relu(theta[1 + n:])])
    return slope if use_evidence else slope * 0.0


def fit_reliability(data: FusionData, modalities: Sequence[str], *, l2: float = 1e-2,
                    use_evidence: bool = True, flag_defaults: Mapping[str, Sequence[float]] | None = None,
                    uncertain_below: float = 0.5, groups: np.ndarray | None = None, robust: float = 0.0,
                    regret: bool = False, features: Sequence[str] = PROB_FEATURES) -> ReliabilityFusion:
    """The :class:`ReliabilityFusion` with the least penalised NLL on ``data`` (``use_evidence=False``: only the
    biases are fitted, a constant weight per modality, i.e. a log-linear pool with fitted weights)."""
    import torch

    modalities = tuple(modalities)
    defaults = dict(flag_defaults) if flag_defaults is not None else flag_defaults_of(data, modalities)
    features = tuple(features)
    ev, logs, ok = _design(data, modalities, defaults, features)
    multi = np.sum([ok[m] for m in modalities], axis=0) >= 2
    if not multi.any():
        raise ValueError("no example has two modalities present: nothing to fit")
    t = {m: torch.tensor(ev[m][multi]) for m in modalities}
    lg = {m: torch.tensor(logs[m][multi]) for m in modalities}
    pr = {m: torch.tensor(ok[m][multi], dtype=torch.float64) for m in modalities}
    y = torch.tensor(data.y[multi])
    mask = torch.tensor(data.classes[multi])
    w = torch.tensor(data.weight[multi], dtype=torch.float64)
    w = w / w.sum()
    if groups is not None and robust > 0:
        codes = np.unique(np.asarray(groups)[multi], return_inverse=True)[1]
        onehot = torch.tensor(np.eye(codes.max() + 1)[codes])  # (n, G)
        gw = onehot * w[:, None]
        gw = gw / gw.sum(0, keepdim=True)
        ref = torch.zeros(onehot.shape[1], dtype=torch.float64)
        if regret:
            singles = []
            for m in modalities:
                s1 = lg[m].masked_fill(~mask, -1e9)
                singles.append(-(torch.log_softmax(s1, 1).gather(1, y[:, None]).squeeze(1)[:, None] * gw).sum(0))
            ref = torch.stack(singles).min(0).values
    init = float(np.log(np.expm1(1.0)))  # softplus(init) = 1: the plain product of the modalities
    theta = {m: torch.zeros(1 + ev[m].shape[1], dtype=torch.float64) for m in modalities}
    for m in modalities:
        theta[m][0] = init
        theta[m][1 + len(features):] = 0.1  # a flag starts inside its allowed (non-negative) range
        theta[m].requires_grad_(True)
    opt = torch.optim.LBFGS(list(theta.values()), lr=1.0, max_iter=500, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        score = 0.0
        penalty = 0.0
        for m in modalities:
            slope = _slope(theta[m], use_evidence, len(features))
            r = torch.nn.functional.softplus(theta[m][0] + t[m] @ slope)
            score = score + (pr[m] * r)[:, None] * lg[m]
            penalty = penalty + slope.square().sum()
        score = score.masked_fill(~mask, -1e9)
        ll = torch.log_softmax(score, 1).gather(1, y[:, None]).squeeze(1)
        if groups is not None and robust > 0:
            per = -(ll[:, None] * gw).sum(0) - ref
            nll = torch.logsumexp(robust * per, 0) / robust
        else:
            nll = -(ll * w).sum()
        loss = nll + l2 * penalty
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        coef = {m: np.concatenate([theta[m][:1].numpy(), _slope(theta[m], use_evidence, len(features)).numpy()])
                for m in modalities}
    return ReliabilityFusion(modalities=modalities, coefficients={m: c.tolist() for m, c in coef.items()},
                             flags={m: FLAGS.get(m, ()) for m in modalities}, flag_defaults=defaults,
                             uncertain_below=uncertain_below, prob_features=features, gates=GATES)


def restricted_argmax(probs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The label over each example's own classes (probabilities renormalised there)."""
    return np.where(classes, np.nan_to_num(probs, nan=-1.0), -1.0).argmax(1)


def nll_over(probs: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """Mean negative log-likelihood of ``y`` with the probabilities renormalised over each example's classes."""
    p = np.where(classes, np.clip(np.nan_to_num(probs), 1e-12, None), 0.0)
    p = p / p.sum(1, keepdims=True)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


__all__ = ["EMOTIONS", "FusionData", "fit_reliability", "flag_defaults_of", "nll_over", "restricted_argmax"]
