"""Reliability-weighted late fusion (numpy): each modality is weighted, window by window, by what it shows
about its own reliability; and the published fixed-weight decision fusion, with the same interface.

Dataflow (:class:`ReliabilityFusion`)::

    p_m over labels_m ─► evidence e_m = [confidence, margin, certainty, *flags_m] ─► r_m = softplus(θ_m · [1, e_m])
    p_m ─► L_m = log p_m over EMOTIONS (missing classes: below) ─┐                          │
                                                                 └─► fused = softmax(Σ_m r_m L_m) ◄─┘
                                                                     weights π_m = r_m / Σ_k r_k

* ``confidence`` is the top probability, ``margin`` the top minus the second, ``certainty`` one minus the
  entropy over ``log K`` (all over the modality's own ``K`` labels); the flags are per-window facts the
  analyzer knows (face: the share of the window's frames that had MediaPipe's blendshape member; voice: the
  share of the window that voice activity detection calls speech; text: how many of the window's words the
  text model reads as an emotion on their own, :class:`avemo.text.windows.EmotionWords`). ``r_m`` is both the
  modality's weight and its inverse temperature, so a confident, well-placed modality counts more *and* a flat
  one counts less.
* A gate (``gates[m]``, one of ``m``'s flags): where the caller gives that flag as 0, ``m`` sits out of the pool
  (weight 0) unless it is the window's only modality. The text is gated by its emotion-word count: the words of
  most speech carry no emotion, and a text model that knows only emotional sentences still names one for them.
* A class a modality does not have: *calm* takes *neutral*'s log-probability when the modality has neutral (a
  seven-class face model cannot tell calm from neutral), any other missing class the mean of the modality's
  log-probabilities (no evidence for or against it).
* One modality present: the fused probabilities are that modality's own, exactly (projected onto EMOTIONS,
  0 for classes it lacks) and its weight is 1. None present: NaN, weights 0.
* ``uncertain``: the fused label's probability is under ``uncertain_below`` (0.5: the fused probabilities are
  fitted by likelihood, so below it the label is more likely wrong than right).

What the rule guarantees (no class bias, every ``r_m > 0``): if every present modality gives class ``d`` at least
the probability it gives class ``c`` and one gives strictly more (probabilities under 1e-4 count as 1e-4), then
``fused[d] > fused[c]``. So the fused label is never a class that one same other class out-ranks in every present
modality (:func:`dominated`, over the classes they all have). With two modalities: the fused label is the face's
first choice, the voice's first choice, or a class the face ranks above the voice's first choice *and* the voice
ranks above the face's first choice.

:class:`DecisionFusion` is the fixed-weight decision fusion of the reviewed face + voice + text system
(Almulla 2024: 55 % face, 38 % voice, 7 % text): ``p = Σ_m w_m p_m / Σ_m w_m`` over the present modalities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from avemo.labels import EMOTIONS, project_probs

FLOOR = 1e-4
#: evidence computed from a modality's own probabilities: the summary ones, and which class it names first
PROB_FEATURES: tuple[str, ...] = ("confidence", "margin", "certainty")
TOP_FEATURES: tuple[str, ...] = tuple(f"top:{e}" for e in EMOTIONS)
#: the per-window flags each modality may carry (the analyzer's columns), in this order
FLAGS: dict[str, tuple[str, ...]] = {"face": ("face_blendshapes",), "voice": ("speech_fraction",),
                                     "text": ("text_emotion_words",)}
#: the flag that gates a modality (given as 0: the modality sits out where another is present)
GATES: dict[str, str] = {"text": "text_emotion_words"}


@dataclass(frozen=True)
class FusionOutput:
    """What a fusion gives per window: ``fused`` (N, 8) over EMOTIONS (NaN rows where no modality is present),
    ``weights`` (N, M) in ``modalities`` order (summing to 1 over the present ones, 0 for absent ones),
    ``uncertain`` (N,) and the ``evidence`` it rested on: per modality (N, 3 + flags) in
    ``PROB_FEATURES + FLAGS[m]`` order, NaN where the modality is absent."""

    fused: np.ndarray
    weights: np.ndarray
    uncertain: np.ndarray
    modalities: tuple[str, ...]
    evidence: Mapping[str, np.ndarray]

    def astuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.fused, self.weights, self.uncertain


def prob_features(probs: np.ndarray, labels: Sequence[str] | None = None,
                  names: Sequence[str] = PROB_FEATURES) -> np.ndarray:
    """``(N, len(names))`` evidence from probabilities ``(N, K)`` over a modality's own ``labels``: ``confidence``
    (top probability), ``margin`` (top minus second), ``certainty`` (1 - entropy / log K), ``top:<class>`` (1 where
    the modality names that class first)."""
    p = np.clip(np.asarray(probs, dtype=np.float64), 0.0, None)
    p = p / np.clip(p.sum(-1, keepdims=True), 1e-12, None)
    k = p.shape[-1]
    s = np.sort(p, axis=-1)
    confidence = s[:, -1]
    margin = confidence - (s[:, -2] if k > 1 else 0.0)
    entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)
    certainty = 1.0 - entropy / np.log(k) if k > 1 else np.ones(len(p))
    cols = {"confidence": confidence, "margin": margin, "certainty": certainty}
    top = np.array(tuple(labels) if labels is not None else EMOTIONS, dtype=object)[p.argmax(-1)] if len(p) else []
    for e in EMOTIONS:
        cols[f"top:{e}"] = (np.asarray(top) == e).astype(np.float64)
    unknown = [n for n in names if n not in cols]
    if unknown:
        raise ValueError(f"unknown evidence {unknown}; known: {sorted(cols)}")
    return np.stack([cols[n] for n in names], axis=1) if names else np.zeros((len(p), 0))


def log_onto_emotions(probs: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Log-probabilities ``(N, K)`` over ``labels`` -> ``(N, 8)`` over EMOTIONS (missing classes: the rule in the
    module docstring)."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), FLOOR, None))
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    labels = tuple(labels)
    out = np.repeat(logp.mean(-1, keepdims=True), len(EMOTIONS), axis=-1)
    for j, name in enumerate(labels):
        if name in EMOTIONS:
            out[:, EMOTIONS.index(name)] = logp[:, j]
    if "calm" not in labels and "neutral" in labels:
        out[:, EMOTIONS.index("calm")] = logp[:, labels.index("neutral")]
    return out


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _inputs(probs: Mapping[str, np.ndarray | None], labels: Mapping[str, Sequence[str]] | None,
            modalities: Sequence[str]) -> tuple[int, dict[str, np.ndarray], dict[str, tuple[str, ...]],
                                                dict[str, np.ndarray]]:
    """The given modalities' probabilities (float64), labels and presence masks, checked."""
    given = {m: p for m, p in probs.items() if p is not None}
    unknown = sorted(set(given) - set(modalities))
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; this fusion knows {tuple(modalities)}")
    if not given:
        raise ValueError("every modality is absent: at least one input is needed")
    arrays = {m: np.asarray(p, dtype=np.float64) for m, p in given.items()}
    sizes = {len(a) for a in arrays.values()}
    if len(sizes) != 1:
        raise ValueError(f"modalities have different numbers of windows: { {m: len(a) for m, a in arrays.items()} }")
    labs = {m: tuple((labels or {}).get(m, EMOTIONS)) for m in arrays}
    for m, a in arrays.items():
        if a.ndim != 2 or a.shape[1] != len(labs[m]):
            raise ValueError(f"{m}: probabilities must be (N, {len(labs[m])}) over its labels, got {a.shape}")
    present = {m: ~np.isnan(a).any(1) for m, a in arrays.items()}
    return sizes.pop(), arrays, labs, present


def gated(present: Mapping[str, np.ndarray], flags: Mapping[str, np.ndarray | None],
          gates: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Where each modality joins the pool: ``present``, less the windows where a gated modality's gate flag
    (column ``gates[m]`` of ``flags[m]``) is given as <= 0 and another modality is present."""
    count = np.sum([p for p in present.values()], axis=0)
    out = dict(present)
    for m, j in gates.items():
        given = flags.get(m)
        if m not in present or given is None:
            continue
        closed = np.asarray(given, dtype=np.float64).reshape(len(present[m]), -1)[:, j] <= 0  # NaN: not given, open
        out[m] = present[m] & ~(closed & (count - present[m] > 0))
    return out


def _fallback(out: np.ndarray, weights: np.ndarray, count: np.ndarray, arrays: Mapping[str, np.ndarray],
              labs: Mapping[str, tuple[str, ...]], present: Mapping[str, np.ndarray],
              modalities: Sequence[str]) -> None:
    """Windows with one modality present take its probabilities exactly (weight 1); none present: NaN."""
    for m, a in arrays.items():
        one = present[m] & (count == 1)
        if one.any():
            out[one] = project_probs(np.nan_to_num(a[one]), labs[m], EMOTIONS)
            weights[one] = 0.0
            weights[one, modalities.index(m)] = 1.0
    out[count == 0] = np.nan
    weights[count == 0] = 0.0


class ReliabilityFusion:
    """The reliability-weighted log-linear pool (module docstring). ``coefficients[m]`` is ``θ_m``: a bias then
    one coefficient per evidence column of ``m`` (``PROB_FEATURES`` then ``flags[m]``); ``flag_defaults[m]`` fill
    a flag that is not given (or NaN)."""

    def __init__(self, *, modalities: Sequence[str], coefficients: Mapping[str, Sequence[float]],
                 flags: Mapping[str, Sequence[str]], flag_defaults: Mapping[str, Sequence[float]],
                 uncertain_below: float = 0.5, prob_features: Sequence[str] = PROB_FEATURES,
                 gates: Mapping[str, str] | None = None) -> None:
        self.modalities = tuple(modalities)
        self.prob_features = tuple(prob_features)
        self.flags = {m: tuple(flags.get(m, ())) for m in self.modalities}
        self.gates = {m: g for m, g in (gates or {}).items() if m in self.modalities}
        for m, g in self.gates.items():
            if g not in self.flags[m]:
                raise ValueError(f"{m}: gate {g!r} is not one of its flags {self.flags[m]}")
        self.flag_defaults = {m: np.asarray(flag_defaults.get(m, ()), dtype=np.float64) for m in self.modalities}
        self.coefficients = {m: np.asarray(coefficients[m], dtype=np.float64) for m in self.modalities}
        for m in self.modalities:
            want = 1 + len(self.prob_features) + len(self.flags[m])
            if self.coefficients[m].shape != (want,) or self.flag_defaults[m].shape != (len(self.flags[m]),):
                raise ValueError(f"{m}: needs {want} coefficients and {len(self.flags[m])} flag defaults")
        self.uncertain_below = float(uncertain_below)

    def evidence(self, modality: str, probs: np.ndarray, flags: np.ndarray | None,
                 labels: Sequence[str] | None = None) -> np.ndarray:
        """``(N, len(prob_features) + F)``: the probability features, then the flags (defaults where not given or
        NaN)."""
        n = len(probs)
        f = len(self.flags[modality])
        given = np.full((n, f), np.nan) if flags is None else np.asarray(flags, dtype=np.float64).reshape(n, -1)
        if given.shape[1] != f:
            raise ValueError(f"{modality}: evidence must be (N, {f}) ({', '.join(self.flags[modality]) or 'none'}), "
                             f"got {given.shape}")
        given = np.where(np.isnan(given), self.flag_defaults[modality], given)
        p = np.nan_to_num(probs, nan=1.0 / probs.shape[1])
        return np.concatenate([prob_features(p, labels, self.prob_features), given], axis=1)

    def reliability(self, modality: str, evidence: np.ndarray) -> np.ndarray:
        """``r_m`` per window (> 0)."""
        theta = self.coefficients[modality]
        return _softplus(theta[0] + evidence @ theta[1:])

    def pooled(self, present: Mapping[str, np.ndarray], evidence: Mapping[str, np.ndarray | None] | None
               ) -> dict[str, np.ndarray]:
        """Where each present modality joins the pool, after its gate (module docstring)."""
        return gated(present, evidence or {}, {m: self.flags[m].index(g) for m, g in self.gates.items()})

    def fuse_details(self, probs: Mapping[str, np.ndarray | None], labels: Mapping[str, Sequence[str]] | None = None,
                     evidence: Mapping[str, np.ndarray | None] | None = None) -> FusionOutput:
        """:meth:`fuse` with the evidence each modality's weight rested on."""
        n, arrays, labs, given = _inputs(probs, labels, self.modalities)
        present = self.pooled(given, evidence)
        score = np.zeros((n, len(EMOTIONS)))
        raw = np.zeros((n, len(self.modalities)))
        count = np.zeros(n, dtype=np.int64)
        ev_out: dict[str, np.ndarray] = {}
        for m, a in arrays.items():
            ok = present[m]
            ev = self.evidence(m, a, (evidence or {}).get(m), labs[m])
            r = np.where(ok, self.reliability(m, ev), 0.0)
            raw[:, self.modalities.index(m)] = r
            score += r[:, None] * np.where(ok[:, None], log_onto_emotions(np.nan_to_num(a, nan=1.0), labs[m]), 0.0)
            count += ok
            ev_out[m] = np.where(given[m][:, None], ev, np.nan)
        fused = _softmax(score)
        weights = raw / np.clip(raw.sum(1, keepdims=True), 1e-12, None)
        _fallback(fused, weights, count, arrays, labs, present, self.modalities)
        uncertain = (count > 0) & (np.nan_to_num(fused, nan=0.0).max(1) < self.uncertain_below)
        return FusionOutput(fused.astype(np.float32), weights.astype(np.float32), uncertain, self.modalities, ev_out)

    def fuse(self, probs: Mapping[str, np.ndarray | None], labels: Mapping[str, Sequence[str]] | None = None,
             evidence: Mapping[str, np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per window: fused probabilities ``(N, 8)`` over EMOTIONS, weights ``(N, M)`` (``modalities`` order),
        ``uncertain`` ``(N,)``.

        ``probs[m]``: ``(N, K_m)`` over ``labels[m]`` (default EMOTIONS), NaN rows where ``m`` is absent, or None;
        ``evidence[m]``: ``(N, len(flags[m]))`` (face: ``face_blendshapes``; voice: ``speech_fraction``; text:
        ``text_emotion_words``, which also gates it), or None (the bundle's defaults, gates open)."""
        return self.fuse_details(probs, labels, evidence).astuple()


class DecisionFusion:
    """Fixed-weight decision fusion, ``p = Σ_m w_m p_m / Σ_m w_m`` over the present modalities (probabilities
    projected onto EMOTIONS; a class a modality lacks gets 0 from it). Same interface as
    :class:`ReliabilityFusion`; ``evidence`` is ignored."""

    def __init__(self, *, modalities: Sequence[str], weights: Mapping[str, float], uncertain_below: float = 0.5
                 ) -> None:
        self.modalities = tuple(modalities)
        self.weights = {m: float(weights[m]) for m in self.modalities}
        if any(w <= 0 for w in self.weights.values()):
            raise ValueError(f"decision weights must be positive, got {self.weights}")
        self.uncertain_below = float(uncertain_below)

    def fuse_details(self, probs: Mapping[str, np.ndarray | None], labels: Mapping[str, Sequence[str]] | None = None,
                     evidence: Mapping[str, np.ndarray | None] | None = None) -> FusionOutput:
        n, arrays, labs, present = _inputs(probs, labels, self.modalities)
        total = np.zeros((n, len(EMOTIONS)))
        raw = np.zeros((n, len(self.modalities)))
        count = np.zeros(n, dtype=np.int64)
        ev_out: dict[str, np.ndarray] = {}
        for m, a in arrays.items():
            ok = present[m]
            q = project_probs(np.nan_to_num(a), labs[m], EMOTIONS).astype(np.float64)
            q /= np.clip(q.sum(1, keepdims=True), 1e-12, None)
            w = np.where(ok, self.weights[m], 0.0)
            raw[:, self.modalities.index(m)] = w
            total += w[:, None] * q
            count += ok
            ev_out[m] = np.where(ok[:, None], prob_features(np.nan_to_num(a, nan=1.0 / a.shape[1])), np.nan)
        weights = raw / np.clip(raw.sum(1, keepdims=True), 1e-12, None)
        fused = total / np.clip(total.sum(1, keepdims=True), 1e-12, None)
        _fallback(fused, weights, count, arrays, labs, present, self.modalities)
        uncertain = (count > 0) & (np.nan_to_num(fused, nan=0.0).max(1) < self.uncertain_below)
        return FusionOutput(fused.astype(np.float32), weights.astype(np.float32), uncertain, self.modalities, ev_out)

    def fuse(self, probs: Mapping[str, np.ndarray | None], labels: Mapping[str, Sequence[str]] | None = None,
             evidence: Mapping[str, np.ndarray | None] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`ReliabilityFusion.fuse`."""
        return self.fuse_details(probs, labels, evidence).astuple()


def dominated(fused_label: np.ndarray, probs: Mapping[str, np.ndarray], labels: Mapping[str, Sequence[str]]
              ) -> np.ndarray:
    """Per window: whether some other class is ranked at least as high by every modality in ``probs`` and higher by
    one, among the classes they all have (what :class:`ReliabilityFusion` never outputs)."""
    shared = [c for c in EMOTIONS if all(c in labels.get(m, EMOTIONS) for m in probs)]
    cols = {m: [tuple(labels.get(m, EMOTIONS)).index(c) for c in shared] for m in probs}
    out = np.zeros(len(fused_label), dtype=bool)
    for i, lab in enumerate(fused_label):
        name = EMOTIONS[int(lab)]
        if name not in shared:
            continue
        j = shared.index(name)
        vals = [np.clip(np.asarray(probs[m][i], dtype=np.float64)[cols[m]], FLOOR, None) for m in probs]
        ge = np.all([v >= v[j] for v in vals], axis=0)
        gt = np.any([v > v[j] for v in vals], axis=0)
        out[i] = bool(np.any(ge & gt))
    return out
