"""Training losses for the reviewed systems.

- :func:`cross_entropy`: with optional label smoothing and class weights.
- :func:`triplet_loss`: batch-hard triplet loss on L2-normalised embeddings (Hermans et al. 2017).
- :func:`emotion_constrained_triplet`: the triplet loss plus the metric constraint of Mocanu,
  Tapu & Zaharia (2023): for an anchor, a sample of a *similar* emotion (happy/surprised) must lie
  closer than a sample of an *opposed* one (happy/sad), by a margin that grows with how much more
  similar it is. Similarities come from a configurable matrix (default
  :func:`avemo.labels.similarity_matrix`, valence/arousal based).
- :func:`multitask_loss` and :class:`UncertaintyWeighting`: weighted sums of task losses, fixed or
  learned (Kendall et al. 2018).
- :func:`soft_hgr_loss`: the soft Hirschfeld-Gebelein-Renyi maximal-correlation objective (Wang et
  al. 2019), as used by Ma et al. (2020) to learn the information two modalities share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avemo.labels import EMOTIONS, similarity_matrix

__all__ = ["UncertaintyWeighting", "cross_entropy", "emotion_constrained_triplet", "multitask_loss",
           "pairwise_distances", "soft_hgr_loss", "triplet_loss"]


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, *, label_smoothing: float = 0.0,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over class logits ``(B, K)`` and integer targets ``(B,)``."""
    return F.cross_entropy(logits, target, weight=weight, label_smoothing=label_smoothing)


def pairwise_distances(emb: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
    """Euclidean distances ``(B, B)`` between rows (L2-normalised first by default)."""
    if normalize:
        emb = F.normalize(emb, dim=-1)
    sq = (emb.unsqueeze(1) - emb.unsqueeze(0)).pow(2).sum(-1)
    return (sq + 1e-12).sqrt()


def triplet_loss(emb: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.3,
                 normalize: bool = True) -> torch.Tensor:
    """Batch-hard triplet loss: for each anchor, its farthest positive against its closest negative.

    Anchors without a positive or a negative in the batch are left out; a batch with none gives 0.
    """
    d = pairwise_distances(emb, normalize=normalize)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    pos, neg = same & ~eye, ~same
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        return emb.sum() * 0.0
    hardest_pos = d.masked_fill(~pos, float("-inf")).amax(1)
    hardest_neg = d.masked_fill(~neg, float("inf")).amin(1)
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def _similarity(similarity: np.ndarray | torch.Tensor | None, device: torch.device) -> torch.Tensor:
    if similarity is None:
        similarity = similarity_matrix(EMOTIONS)
    return torch.as_tensor(np.asarray(similarity), dtype=torch.float32, device=device)


def emotion_constrained_triplet(emb: torch.Tensor, labels: torch.Tensor, *,
                                similarity: np.ndarray | torch.Tensor | None = None, margin: float = 0.3,
                                constraint_margin: float = 0.5, constraint_weight: float = 1.0,
                                normalize: bool = True) -> torch.Tensor:
    """Triplet loss plus the emotion metric constraint.

    ``similarity`` is a ``(K, K)`` matrix over the label indices (default: the valence/arousal
    similarity of the canonical :data:`avemo.labels.EMOTIONS`). For every anchor ``a`` and two
    samples ``j``, ``k`` of emotions other than ``a``'s with ``S[a, j] > S[a, k]``, the constraint
    term is ``relu(d(a, j) - d(a, k) + constraint_margin * (S[a, j] - S[a, k]))``: the more similar
    emotion must be the closer one. Returns ``triplet + constraint_weight * constraint``.
    """
    base = triplet_loss(emb, labels, margin=margin, normalize=normalize)
    if constraint_weight == 0:
        return base
    sim = _similarity(similarity, emb.device)
    d = pairwise_distances(emb, normalize=normalize)
    s = sim[labels][:, labels]                                  # (B, B): S[y_a, y_j]
    other = labels.unsqueeze(0) != labels.unsqueeze(1)          # j has another emotion than a
    gap = s.unsqueeze(2) - s.unsqueeze(1)                       # (a, j, k): S[a,j] - S[a,k]
    ordered = (gap > 1e-6) & other.unsqueeze(2) & other.unsqueeze(1)
    if not ordered.any():
        return base
    viol = F.relu(d.unsqueeze(2) - d.unsqueeze(1) + constraint_margin * gap)
    return base + constraint_weight * viol[ordered].mean()


def multitask_loss(losses: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None) -> torch.Tensor:
    """Weighted sum of named task losses (weight 1 for tasks not named in ``weights``)."""
    weights = weights or {}
    return sum(weights.get(k, 1.0) * v for k, v in losses.items())  # type: ignore[return-value]


class UncertaintyWeighting(nn.Module):
    """Learned task weights by homoscedastic uncertainty: ``sum_t exp(-s_t) L_t + s_t`` (Kendall 2018)."""

    def __init__(self, *, tasks: Sequence[str]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = self.log_vars.sum() * 0.0
        for i, t in enumerate(self.tasks):
            if t in losses:
                total = total + torch.exp(-self.log_vars[i]) * losses[t] + self.log_vars[i]
        return total


def soft_hgr_loss(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Negative soft-HGR correlation between two views' features ``f``, ``g`` ``(B, D)``.

    ``-(E[f^T g] - 1/2 tr(cov(f) cov(g)))`` with zero-mean features (Wang et al. 2019): minimising it
    makes the two modalities' features maximally correlated while the covariance term keeps them
    from collapsing or exploding. Needs a batch of at least 2.
    """
    if f.shape != g.shape:
        raise ValueError(f"soft-HGR needs features of equal shape, got {tuple(f.shape)} and {tuple(g.shape)}")
    n = f.shape[0]
    if n < 2:
        raise ValueError("soft-HGR needs a batch of at least 2")
    f = f - f.mean(0, keepdim=True)
    g = g - g.mean(0, keepdim=True)
    inner = (f * g).sum(1).mean()
    cov_f = f.T @ f / (n - 1)
    cov_g = g.T @ g / (n - 1)
    return -(inner - 0.5 * (cov_f * cov_g).sum())
