"""Brain emotional learning (BEL) fusion (after Morén & Balkenius 2000; Farhoudi & Setayeshi 2021).

The limbic model has four parts. The *thalamus* passes a coarse signal (the maximum of the inputs);
the *sensory cortex* refines each modality's deep features; the *amygdala* (A) learns excitatory
associations from the cortex and thalamus, and the *orbitofrontal cortex* (O) learns to inhibit the
amygdala where it over-responds. The emotional output is ``E = A - O`` per class.

:class:`BELFusion` holds one amygdala and one orbitofrontal node per class over the concatenated
sensory-cortex outputs of all modalities (absent ones are zeros), trainable by gradient like any
layer. :meth:`BELFusion.rule_update` applies the original, reward-driven learning rules instead:

    dV = alpha * S * max(0, REW - A)        (the amygdala only learns to respond more)
    dW = beta  * S * (E - REW)              (the orbitofrontal cortex corrects the excess)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["BELFusion"]


class BELFusion(nn.Module):
    """``forward({modality: (B, D_m) or None})`` -> ``(E (B, K), {"amygdala": A, "orbitofrontal": O,
    "sensory": S})``."""

    def __init__(self, *, dims: Mapping[str, int], num_classes: int, cortex_dim: int = 64) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.cortex = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, cortex_dim), nn.LayerNorm(cortex_dim),
                                                      nn.Tanh()) for m, d in self.dims.items()})
        s = cortex_dim * len(self.dims)
        self.amygdala = nn.Linear(s + 1, num_classes, bias=False)     # + 1: the thalamic input
        self.orbitofrontal = nn.Linear(s, num_classes, bias=False)
        self.cortex_dim = cortex_dim

    def sensory(self, features: Mapping[str, torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
        """Sensory-cortex vector ``S`` (absent modalities are zeros) and thalamic signal ``max(S)``."""
        ref = next(v for v in features.values() if v is not None)
        parts = [self.cortex[m](features[m]) if features.get(m) is not None
                 else ref.new_zeros(ref.shape[0], self.cortex_dim) for m in self.dims]
        s = torch.cat(parts, dim=-1)
        return s, s.amax(-1, keepdim=True)

    def forward(self, features: Mapping[str, torch.Tensor | None]
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s, th = self.sensory(features)
        a = self.amygdala(torch.cat([s, th], dim=-1))
        o = self.orbitofrontal(s)
        return a - o, {"amygdala": a, "orbitofrontal": o, "sensory": s}

    @torch.no_grad()
    def rule_update(self, features: Mapping[str, torch.Tensor | None], reward: torch.Tensor, *,
                    alpha: float = 0.1, beta: float = 0.1) -> torch.Tensor:
        """One step of the BEL learning rules with ``reward`` ``(B, K)`` (e.g. one-hot targets).

        Only the amygdala and orbitofrontal weights change (the cortex is held). Returns the mean
        squared error between ``E`` and the reward before the step.
        """
        s, th = self.sensory(features)
        sa = torch.cat([s, th], dim=-1)
        a, o = self.amygdala(sa), self.orbitofrontal(s)
        e = a - o
        n = s.shape[0]
        self.amygdala.weight += alpha * torch.relu(reward - a).T @ sa / n
        self.orbitofrontal.weight += beta * (e - reward).T @ s / n
        return ((e - reward) ** 2).mean()
