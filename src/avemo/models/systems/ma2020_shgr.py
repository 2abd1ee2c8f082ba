"""Shared-information learning with soft-HGR — model card.

**Paper.** F. Ma, W. Zhang, Y. Li, S.-L. Huang, L. Zhang (2020), "Learning better representations
for audio-visual emotion recognition with common information", *Applied Sciences* 10(20), 7239
(HGR maximal correlation between modalities; the soft-HGR objective of Wang et al. 2019).

**Implemented.** :class:`SharedInformation` wraps any registered two-stream system (``base``,
default ``dixit2024_cnn_early``): a projection per modality maps the system's per-modality
embeddings (``out["embeddings"]``) to ``hgr_dim`` features ``f(audio)``, ``g(video)``, and the loss
adds ``hgr_weight`` x :func:`avemo.losses.soft_hgr_loss` (negative soft-HGR correlation) to the base
system's loss whenever both modalities are present, so the encoders learn the information the two
modalities share. The projections are returned as ``out["shared"]``.

**What differs.** Ma et al. build dedicated encoders and a classifier on the HGR features, with a
semi-supervised variant; here the objective is an add-on to existing systems (the classifier stays
the base system's), and only the supervised form is implemented.

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avemo.losses import soft_hgr_loss
from avemo.models.registry import create_model, register_model
from avemo.models.systems.base import TINY_SPEC, SystemWrapper

__all__ = ["SharedInformation"]


class SharedInformation(SystemWrapper):
    """A two-stream system plus per-modality projections trained with the soft-HGR objective."""

    def __init__(self, system: nn.Module, *, hgr_dim: int = 32, hgr_weight: float = 0.1) -> None:
        super().__init__(system)
        dims = dict(getattr(system, "embedding_dims", {}))
        if not {"audio", "video"} <= set(dims):
            raise ValueError(f"{type(system).__name__} does not expose audio and video embeddings")
        self.proj = nn.ModuleDict({m: nn.Linear(dims[m], hgr_dim) for m in ("audio", "video")})
        self.hgr_weight = hgr_weight

    def forward(self, **inputs: Any) -> dict[str, Any]:
        out = self.system(**inputs)
        out["shared"] = {m: self.proj[m](e) for m, e in out["embeddings"].items() if m in self.proj}
        return out

    def loss(self, out: dict[str, Any], target: torch.Tensor, **kw: Any) -> torch.Tensor:
        total = self.system.loss(out, target, **kw)
        shared = out["shared"]
        if len(shared) == 2 and len(target) > 1:
            total = total + self.hgr_weight * soft_hgr_loss(shared["audio"], shared["video"])
        return total


@register_model("ma2020_shgr", kind="system", modalities=("audio", "video"), wraps=True,
                tiny={"base": "dixit2024_cnn_early", "hgr_dim": 8,
                      "base_kwargs": {"widths": (4, 8), "hidden": 16, "dropout": 0.0, **TINY_SPEC}})
def ma2020_shgr(*, base: str = "dixit2024_cnn_early", base_kwargs: dict[str, Any] | None = None,
                hgr_dim: int = 32, hgr_weight: float = 0.1) -> SharedInformation:
    """A registered two-stream system with the soft-HGR shared-information objective (Ma et al. 2020)."""
    return SharedInformation(create_model(base, **(base_kwargs or {})), hgr_dim=hgr_dim, hgr_weight=hgr_weight)
