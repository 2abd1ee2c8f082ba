"""Fuzzy-logic decision fusion (after Kozlov, Akram & Shamoi 2024).

Each modality's probability for a class is fuzzified by membership functions for the linguistic
terms ``low``, ``medium`` and ``high`` (trapezoids over [0, 1], breakpoints configurable). A rule base
of Takagi-Sugeno rules of the form

    IF face is high AND voice is medium THEN support is 0.80

is evaluated for every class: a rule fires with the t-norm (``min`` or ``product``) of its
antecedents' memberships; the class support is the firing-weighted mean of the rules' consequents
(zero-order Sugeno defuzzification), and supports are normalised over classes into probabilities.
The consequents are parameters (initialised from the rule table, trainable) and the rule base is
printable as text at any time (:meth:`FuzzyFusion.rules_text`). Rules whose antecedents name an
absent modality do not fire, so the fusion works with any subset of modalities.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["DEFAULT_TERMS", "FuzzyFusion", "Rule", "default_rules", "trapezoid"]

#: term -> trapezoid (a, b, c, d): 0 below a, rising to 1 at b, 1 until c, falling to 0 at d.
DEFAULT_TERMS: dict[str, tuple[float, float, float, float]] = {
    "low": (-1.0, 0.0, 0.15, 0.4),
    "medium": (0.15, 0.4, 0.5, 0.75),
    "high": (0.5, 0.75, 1.0, 2.0),
}
_LEVEL = {"low": 0.0, "medium": 0.5, "high": 1.0}


def trapezoid(x: torch.Tensor, a: float, b: float, c: float, d: float) -> torch.Tensor:
    """Trapezoidal membership of ``x`` (piecewise linear, so gradients flow where it slopes)."""
    rise = (x - a) / max(b - a, 1e-6)
    fall = (d - x) / max(d - c, 1e-6)
    return torch.clamp(torch.minimum(rise, fall), 0.0, 1.0)


@dataclass(frozen=True)
class Rule:
    """``IF <modality> is <term> AND ... THEN support is <consequent>``."""

    antecedents: tuple[tuple[str, str], ...]
    consequent: float

    def text(self, consequent: float | None = None, weight: float = 1.0) -> str:
        cond = " AND ".join(f"{m} is {t}" for m, t in self.antecedents)
        c = self.consequent if consequent is None else consequent
        return f"IF {cond} THEN support is {c:.2f}" + (f" (weight {weight:.2f})" if weight != 1.0 else "")


def default_rules(modalities: Sequence[str], trust: Mapping[str, float] | None = None) -> list[Rule]:
    """Every combination of terms over the modalities, plus one single-modality rule per term.

    A combined rule's consequent is the trust-weighted mean of its terms' levels (low 0, medium 0.5,
    high 1): with more trust in the face, ``face high AND voice low`` supports the class more than
    ``face low AND voice high``. The single-modality rules let the fusion answer when only one
    modality is present.
    """
    trust = {m: float((trust or {}).get(m, 1.0)) for m in modalities}
    total = sum(trust.values())
    rules = []
    for terms in itertools.product(_LEVEL, repeat=len(modalities)):
        level = sum(trust[m] * _LEVEL[t] for m, t in zip(modalities, terms, strict=True)) / total
        rules.append(Rule(tuple(zip(modalities, terms, strict=True)), round(level, 3)))
    if len(modalities) > 1:
        rules += [Rule(((m, t),), _LEVEL[t]) for m in modalities for t in _LEVEL]
    return rules


class FuzzyFusion(nn.Module):
    """Fuse ``{modality: (B, K) probabilities}`` into ``(B, K)`` probabilities with a fuzzy rule base.

    Single-modality rules carry ``single_weight`` (a small weight), so they matter only when the
    combined rules cannot fire because a modality is absent.
    """

    def __init__(self, *, modalities: Sequence[str], rules: Sequence[Rule] | None = None,
                 terms: Mapping[str, Sequence[float]] | None = None, tnorm: str = "product",
                 trust: Mapping[str, float] | None = None, single_weight: float = 0.05,
                 learn_consequents: bool = True) -> None:
        super().__init__()
        if tnorm not in ("min", "product"):
            raise ValueError(f"tnorm must be 'min' or 'product', not {tnorm!r}")
        self.modalities = tuple(modalities)
        self.terms = {k: tuple(float(x) for x in v) for k, v in (terms or DEFAULT_TERMS).items()}
        self.rules = list(rules) if rules is not None else default_rules(self.modalities, trust)
        for r in self.rules:
            for m, t in r.antecedents:
                if m not in self.modalities or t not in self.terms:
                    raise ValueError(f"rule {r.text()!r} names an unknown modality or term")
        self.tnorm = tnorm
        c = torch.tensor([r.consequent for r in self.rules], dtype=torch.float32)
        self.consequents = nn.Parameter(c, requires_grad=learn_consequents)
        self.register_buffer("rule_weights", torch.tensor(
            [1.0 if len(r.antecedents) > 1 or len(self.modalities) == 1 else single_weight for r in self.rules]))

    def memberships(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """Membership of every probability in every term: ``{term: same shape as p}``."""
        return {t: trapezoid(p, *abcd) for t, abcd in self.terms.items()}

    def forward(self, probs: Mapping[str, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns fused probabilities ``(B, K)`` and rule firing strengths ``(B, K, R)``."""
        mu = {m: self.memberships(p) for m, p in probs.items() if p is not None and m in self.modalities}
        if not mu:
            raise ValueError("every modality is absent: at least one input is needed")
        ref = next(iter(mu.values()))["low"]
        firing = []
        for r in self.rules:
            if any(m not in mu for m, _ in r.antecedents):
                firing.append(torch.zeros_like(ref))
                continue
            parts = [mu[m][t] for m, t in r.antecedents]
            f = parts[0]
            for x in parts[1:]:
                f = torch.minimum(f, x) if self.tnorm == "min" else f * x
            firing.append(f)
        fire = torch.stack(firing, dim=-1) * self.rule_weights          # (B, K, R)
        support = (fire * self.consequents.clamp(0, 1)).sum(-1) / (fire.sum(-1) + 1e-6)
        support = support + 1e-4
        return support / support.sum(-1, keepdim=True), fire

    def rules_text(self) -> str:
        """The rule base, one rule per line, with the current consequents."""
        return "\n".join(r.text(c, w) for r, c, w in zip(self.rules, self.consequents.tolist(),
                                                        self.rule_weights.tolist(), strict=True))
