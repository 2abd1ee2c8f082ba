"""Decision-level fusion: a weighted average of the modalities' class probabilities.

The weights are fixed (e.g. Almulla's 55 % face, 38 % voice, 7 % text) or learned (a softmax over
free parameters initialised at the given weights). Absent modalities are left out and the weights of
the present ones renormalised, so the fusion degrades gracefully to any subset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["WeightedDecisionFusion"]


class WeightedDecisionFusion(nn.Module):
    """``p = sum_m w_m p_m / sum_m w_m`` over the present modalities ``m``.

    ``forward(probs)`` takes ``{modality: (B, K) probabilities or None}`` and returns the fused
    ``(B, K)`` probabilities and the weights used ``(M,)`` (0 for absent modalities).
    """

    def __init__(self, *, modalities: Sequence[str], weights: Sequence[float] | None = None,
                 learn: bool = False) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        w = torch.tensor(weights if weights is not None else [1.0] * len(self.modalities), dtype=torch.float32)
        if w.shape != (len(self.modalities),) or (w < 0).any() or w.sum() <= 0:
            raise ValueError(f"need one non-negative weight per modality {self.modalities}, got {weights}")
        w = w / w.sum()
        self.learn = learn
        if learn:
            self.logits = nn.Parameter(torch.log(w.clamp_min(1e-4)))
        else:
            self.register_buffer("fixed", w)

    def weights(self) -> torch.Tensor:
        """The normalised weights over all modalities."""
        return torch.softmax(self.logits, 0) if self.learn else self.fixed

    def forward(self, probs: Mapping[str, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights()
        present = torch.tensor([probs.get(m) is not None for m in self.modalities], device=w.device)
        if not present.any():
            raise ValueError("every modality is absent: at least one input is needed")
        w = w * present / (w * present).sum()
        fused = sum(w[i] * probs[m] for i, m in enumerate(self.modalities) if probs.get(m) is not None)
        return fused, w  # type: ignore[return-value]

    def describe(self) -> str:
        return ", ".join(f"{m} {w:.2f}" for m, w in zip(self.modalities, self.weights().tolist(), strict=True))
