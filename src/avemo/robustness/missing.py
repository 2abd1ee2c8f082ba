"""Missing-modality robustness: modality dropout around any two-stream system.

:class:`ModalityDropout` wraps a system that follows the forward convention of
:mod:`avemo.models.systems` (every modality may be ``None``). In training it drops one modality of a
batch at random (``p_drop``; never all of them), so the system learns to answer from either side;
at inference it passes the inputs through, so an absent modality (``None``) is simply absent.
Dropping happens per batch, because the systems take a whole modality as ``None``; with
``per_sample=True`` it instead zeroes the dropped modality for a random subset of the batch's
samples (a softer form that keeps both streams in every batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from avemo.models.systems.base import SystemWrapper

__all__ = ["ModalityDropout"]


class ModalityDropout(SystemWrapper):
    """``ModalityDropout(system, p_drop=0.3)``: forward and loss pass through to ``system``."""

    def __init__(self, system: nn.Module, *, p_drop: float = 0.3, modalities: Sequence[str] = ("audio", "video"),
                 per_sample: bool = False, seed: int | None = None) -> None:
        super().__init__(system)
        if not 0 <= p_drop <= 1:
            raise ValueError(f"p_drop must be in [0, 1], not {p_drop}")
        self.p_drop = p_drop
        self.drop_modalities = tuple(modalities)
        self.per_sample = per_sample
        self._gen = torch.Generator().manual_seed(seed) if seed is not None else None

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self._gen)

    def drop(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """The inputs with at most all-but-one present modality dropped (training only)."""
        present = [m for m in self.drop_modalities if inputs.get(m) is not None]
        if not self.training or len(present) < 2 or self.p_drop == 0:
            return inputs
        out = dict(inputs)
        if self.per_sample:
            b = len(inputs[present[0]])
            which = torch.randint(len(present), (b,), generator=self._gen)
            hit = self._rand(b) < self.p_drop
            for i, m in enumerate(present):
                mask = (hit & (which == i)).to(inputs[m].dtype)
                out[m] = inputs[m] * (1 - mask).view(-1, *([1] * (inputs[m].dim() - 1)))
            return out
        if float(self._rand(1)) < self.p_drop:
            out[present[int(torch.randint(len(present), (1,), generator=self._gen))]] = None
        return out

    def forward(self, **inputs: Any) -> dict[str, Any]:
        return self.system(**self.drop(inputs))
