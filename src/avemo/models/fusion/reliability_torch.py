"""The reliability-weighted fusion as a torch module: the rule of
:class:`avemo.models.fusion.reliability.ReliabilityFusion` (the numpy runtime the analyzer runs), differentiable in
the probabilities it is given, for the robustness report's attacks through the fused answer. Registered as
``reliability_fusion``; a bundle's coefficients are set with :meth:`TorchReliabilityFusion.set_coefficients`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from avemo.labels import EMOTIONS
from avemo.models.fusion.reliability import FLAGS, FLOOR, GATES, PROB_FEATURES
from avemo.models.registry import register_model


def _prob_features(p: torch.Tensor) -> torch.Tensor:
    """(B, K) probabilities -> (B, 3): confidence, margin, certainty (as :func:`reliability.prob_features`)."""
    k = p.shape[-1]
    top = torch.topk(p, min(2, k), dim=-1).values
    margin = top[:, 0] - (top[:, 1] if k > 1 else 0.0)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)
    certainty = 1.0 - entropy / math.log(k) if k > 1 else torch.ones_like(margin)
    return torch.stack([top[:, 0], margin, certainty], dim=-1)


def _log_onto_emotions(p: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
    """(B, K) over ``labels`` -> (B, 8) log-probabilities over EMOTIONS (as :func:`reliability.log_onto_emotions`)."""
    logp = torch.log(p.clamp_min(FLOOR))
    logp = logp - torch.logsumexp(logp, dim=-1, keepdim=True)
    cols = [logp.mean(-1)] * len(EMOTIONS)
    for j, name in enumerate(labels):
        if name in EMOTIONS:
            cols[EMOTIONS.index(name)] = logp[:, j]
    if "calm" not in labels and "neutral" in labels:
        cols[EMOTIONS.index("calm")] = logp[:, list(labels).index("neutral")]
    return torch.stack(cols, dim=-1)


def _onto_emotions(p: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
    """(B, K) over ``labels`` -> (B, 8) over EMOTIONS, 0 for the classes it lacks."""
    zero = torch.zeros_like(p[:, 0])
    return torch.stack([p[:, list(labels).index(e)] if e in labels else zero for e in EMOTIONS], dim=-1)


class TorchReliabilityFusion(nn.Module):
    """``r_m = softplus(θ_m · [1, evidence_m])``; fused = ``softmax(Σ_m r_m log p_m)`` over the present modalities;
    one present: its own probabilities; none: NaN. The evidence flags take their defaults unless given; a gated
    modality whose gate flag is given as 0 sits out where another is present."""

    def __init__(self, *, modalities: Sequence[str] = ("face", "voice", "text"),
                 flags: Mapping[str, Sequence[str]] | None = None, gates: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.flags = {m: tuple((flags or FLAGS).get(m, ())) for m in self.modalities}
        self.gates = {m: self.flags[m].index(g) for m, g in (GATES if gates is None else gates).items()
                      if m in self.modalities and g in self.flags[m]}
        self.theta = nn.ParameterDict({m: nn.Parameter(torch.zeros(1 + len(PROB_FEATURES) + len(self.flags[m]),
                                                                   dtype=torch.float64)) for m in self.modalities})
        for m in self.modalities:
            self.register_buffer(f"defaults_{m}", torch.zeros(len(self.flags[m]), dtype=torch.float64))

    def set_coefficients(self, coefficients: Mapping[str, Sequence[float]],
                         flag_defaults: Mapping[str, Sequence[float]]) -> None:
        with torch.no_grad():
            for m in self.modalities:
                self.theta[m].copy_(torch.as_tensor(list(coefficients[m]), dtype=torch.float64))
                getattr(self, f"defaults_{m}").copy_(torch.as_tensor(list(flag_defaults[m]), dtype=torch.float64))

    def forward(self, probs: Mapping[str, torch.Tensor | None], labels: Mapping[str, Sequence[str]] | None = None,
                evidence: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``probs[m]``: (B, K_m) over ``labels[m]`` (default EMOTIONS), NaN rows absent -> fused (B, 8)."""
        given = {m: p for m, p in probs.items() if p is not None and m in self.modalities}
        if not given:
            raise ValueError("every modality is absent: at least one input is needed")
        n = len(next(iter(given.values())))
        score = torch.zeros(n, len(EMOTIONS), dtype=torch.float64)
        single = torch.zeros(n, len(EMOTIONS), dtype=torch.float64)
        count = torch.zeros(n, dtype=torch.long)
        present = {m: ~torch.isnan(p).any(-1) for m, p in given.items()}
        others = {m: sum(v.long() for v in present.values()) - present[m].long() for m in present}
        for m, p in given.items():
            labs = tuple((labels or {}).get(m, EMOTIONS))
            ok = present[m]
            if m in self.gates and evidence is not None and m in evidence:
                closed = evidence[m].double().reshape(n, -1)[:, self.gates[m]] <= 0  # NaN: not given, open
                ok = ok & ~(closed & (others[m] > 0))
            q = torch.nan_to_num(p.double(), nan=1.0 / p.shape[-1]).clamp_min(0)
            q = q / q.sum(-1, keepdim=True).clamp_min(1e-12)
            flag = getattr(self, f"defaults_{m}").expand(n, -1)
            if evidence is not None and m in evidence:
                e = evidence[m].double().reshape(n, -1)
                flag = torch.where(torch.isnan(e), flag, e)
            ev = torch.cat([_prob_features(q), flag], dim=-1)
            r = F.softplus(self.theta[m][0] + ev @ self.theta[m][1:])
            score = score + torch.where(ok[:, None], r[:, None] * _log_onto_emotions(q, labs), torch.zeros_like(score))
            single = torch.where(ok[:, None], _onto_emotions(q, labs), single)
            count = count + ok.long()
        fused = torch.where((count == 1)[:, None], single, torch.softmax(score, dim=-1))
        return torch.where((count == 0)[:, None], torch.full_like(fused, float("nan")), fused).float()


@register_model("reliability_fusion", kind="fusion", modalities=("face", "voice", "text"))
def create_reliability_fusion(**kwargs) -> TorchReliabilityFusion:
    """Reliability-weighted fusion (keyword arguments: modalities, flags); coefficients 0 until set."""
    return TorchReliabilityFusion(**kwargs)
