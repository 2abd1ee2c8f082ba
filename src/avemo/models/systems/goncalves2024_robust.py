"""Missing-modality robustness by modality dropout — model card.

**Paper.** L. Goncalves, S.-G. Leem, W.-C. Lin, B. Sisman, C. Busso (2024), "Versatile audio-visual
learning for emotion recognition" / robust audio-visual emotion recognition with missing
modalities: training with modality dropout so one model serves audio-visual, audio-only and
visual-only input.

**Implemented (in that spirit).** ``goncalves2024_robust`` wraps any registered two-stream system
(``base``, default ``khan2024_mser``; ``base_kwargs`` are its arguments) in
:class:`avemo.robustness.missing.ModalityDropout`: during training one modality of a batch is
dropped with probability ``p_drop`` (or, with ``per_sample=True``, zeroed for a random subset of
samples); at inference either modality may be ``None``. The base systems stand in for a missing
modality with learned placeholders (or skip the cross-modal step), which is what makes this work.

**What differs.** Goncalves et al. design a dedicated architecture (shared layers and
modality-specific branches with a unimodal/multimodal switch); here the robustness is a wrapper
around the project's existing systems rather than a new network.

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from avemo.models.registry import create_model, register_model
from avemo.models.systems.base import TINY_SPEC

__all__ = ["goncalves2024_robust"]


@register_model("goncalves2024_robust", kind="system", modalities=("audio", "video"), wraps=True,
                tiny={"base": "khan2024_mser", "p_drop": 0.3,
                      "base_kwargs": {"widths": (4, 8), "dim": 16, "heads": 2, "depth": 1, "dropout": 0.0,
                                      **TINY_SPEC}})
def goncalves2024_robust(*, base: str = "khan2024_mser", base_kwargs: dict[str, Any] | None = None,
                         p_drop: float = 0.3, per_sample: bool = False) -> nn.Module:
    """A registered two-stream system trained and run with modality dropout."""
    from avemo.robustness.missing import ModalityDropout  # here: robustness imports the systems' base

    return ModalityDropout(create_model(base, **(base_kwargs or {})), p_drop=p_drop, per_sample=per_sample)
