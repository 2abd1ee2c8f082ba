"""Calibrated late fusion as a torch module, for fitting and for systems that train through it.

The same rule as :class:`avemo.models.fusion.late.LateFusion` (the torch-free runtime the analyzer
runs), with the temperatures and weights as parameters. Registered as ``fusion``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.models.fusion.late import FLOOR, onto_emotions, present
from avemo.models.registry import register_model


class CalibratedLateFusion(nn.Module):
    """Temperature per modality and a log-linear pool with one weight per modality (see module docstring)."""

    def __init__(self, *, modalities: Sequence[str] = ("face", "voice"), n_classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.n_classes = n_classes
        self.log_temperature = nn.Parameter(torch.zeros(len(self.modalities)))
        self.weight = nn.Parameter(torch.ones(len(self.modalities)))

    def set_parameters(self, temperatures: Mapping[str, float], weights: Mapping[str, float]) -> None:
        with torch.no_grad():
            for i, m in enumerate(self.modalities):
                self.log_temperature[i] = float(np.log(temperatures[m]))
                self.weight[i] = float(weights[m])

    @property
    def temperatures(self) -> dict[str, float]:
        return {m: float(t) for m, t in zip(self.modalities, self.log_temperature.exp().tolist(), strict=True)}

    @property
    def weights(self) -> dict[str, float]:
        return {m: float(w) for m, w in zip(self.modalities, self.weight.tolist(), strict=True)}

    def calibrate(self, modality: str, probs: torch.Tensor) -> torch.Tensor:
        """Modality ``modality``'s probabilities (B, K) after its temperature."""
        i = self.modalities.index(modality)
        return torch.softmax(torch.log(probs.clamp_min(FLOOR)) / self.log_temperature[i].exp(), dim=-1)

    def forward(self, probs: Mapping[str, torch.Tensor | None]) -> torch.Tensor:
        """``{modality: (B, K) probabilities over EMOTIONS or None}`` -> fused (B, K) probabilities.

        Rows where a modality is NaN count that modality as absent for that row.
        """
        given = present(probs, self.modalities)
        first = next(iter(given.values()))
        total = torch.zeros(first.shape, dtype=torch.float32)
        count = torch.zeros(first.shape[0], dtype=torch.float32)
        single = torch.zeros(first.shape, dtype=torch.float32)
        for m, p in given.items():
            ok = ~torch.isnan(p).any(dim=-1)
            logp = torch.log(self.calibrate(m, torch.nan_to_num(p, nan=1.0 / p.shape[-1])))
            w = self.weight[self.modalities.index(m)]
            total = total + torch.where(ok[:, None], w * logp, torch.zeros_like(logp))
            single = torch.where(ok[:, None], logp, single)
            count = count + ok.float()
        # one modality present: its calibrated distribution as it is (no weight)
        logits = torch.where((count == 1)[:, None], single, total)
        out = torch.softmax(logits, dim=-1)
        return torch.where((count == 0)[:, None], torch.full_like(out, float("nan")), out)

    @torch.no_grad()
    def fuse(self, probs: Mapping[str, np.ndarray | None], labels: Mapping[str, Sequence[str]] | None = None
             ) -> np.ndarray:
        """Numpy convenience: probabilities per modality (over ``labels[m]``, default EMOTIONS) -> fused
        probabilities over EMOTIONS (NaN rows where no modality is present)."""
        tensors = {}
        for m, p in probs.items():
            if p is None:
                continue
            src = (labels or {}).get(m, EMOTIONS)
            q = np.asarray(p, dtype=np.float32)
            nan = np.isnan(q).any(-1)
            q = onto_emotions(np.nan_to_num(q), src) if tuple(src) != EMOTIONS else q
            q[nan] = np.nan
            tensors[m] = torch.from_numpy(q)
        return self(tensors).numpy()


@register_model("fusion", kind="fusion", modalities=("face", "voice"))
def create_fusion(**kwargs) -> CalibratedLateFusion:
    """Calibrated late fusion (keyword arguments: modalities, n_classes)."""
    return CalibratedLateFusion(**kwargs)
