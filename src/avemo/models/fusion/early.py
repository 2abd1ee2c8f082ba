"""Feature-level (early) fusion with a learned stand-in for an absent modality.

:class:`ConcatFusion` concatenates the modalities' feature vectors and mixes them with an MLP.
When a modality is absent (``None``), a learned placeholder vector takes its place, so a system
trained with modality dropout (:mod:`avemo.robustness.missing`) works with either side missing.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["ConcatFusion", "ModalityPlaceholder"]


def batch_size(features: Mapping[str, torch.Tensor | None]) -> int:
    for v in features.values():
        if v is not None:
            return v.shape[0]
    raise ValueError("every modality is absent: at least one input is needed")


class ModalityPlaceholder(nn.Module):
    """Learned vectors that stand in for absent modalities: ``fill({"audio": x, "video": None})``.

    With a single modality there is nothing to stand in for, so no vectors are made.
    """

    def __init__(self, *, dims: Mapping[str, int]) -> None:
        super().__init__()
        self.dims = dict(dims)
        self.tokens = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m, d in self.dims.items()}
                                       if len(self.dims) > 1 else {})

    def fill(self, features: Mapping[str, torch.Tensor | None]) -> dict[str, torch.Tensor]:
        b = batch_size(features)
        missing = [m for m in self.dims if features.get(m) is None]
        if missing and not self.tokens:
            raise ValueError(f"modality {missing[0]!r} is needed")
        return {m: features[m] if features.get(m) is not None else self.tokens[m].expand(b, -1)
                for m in self.dims}


class ConcatFusion(nn.Module):
    """Concatenate per-modality vectors (placeholders for absent ones) -> Linear -> ReLU -> dropout.

    ``hidden=0`` returns the plain concatenation (``out_dim`` is then the sum of the dims).
    """

    def __init__(self, *, dims: Mapping[str, int], hidden: int = 128, dropout: float = 0.0) -> None:
        super().__init__()
        self.placeholder = ModalityPlaceholder(dims=dims)
        total = sum(dims.values())
        self.mix = (nn.Sequential(nn.Linear(total, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
                    if hidden else nn.Identity())
        self.out_dim = hidden or total

    def forward(self, features: Mapping[str, torch.Tensor | None]) -> torch.Tensor:
        filled = self.placeholder.fill(features)
        return self.mix(torch.cat([filled[m] for m in self.placeholder.dims], dim=-1))
