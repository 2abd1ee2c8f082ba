"""Fuzzy-logic fusion of face and voice — model card.

**Paper.** A. Kozlov, A. Akram, P. Shamoi (2024), fuzzy-logic fusion of facial and vocal emotion
classifiers (each modality's class probabilities fuzzified and combined by an interpretable rule
base).

**Implemented as described.**
- One unimodal classifier per modality (a face CNN over the clip's frames, a voice CNN over the
  log-mel spectrogram), each giving class probabilities.
- Membership functions (low / medium / high, trapezoids over [0, 1]) over each modality's
  probability of each class, and a Takagi-Sugeno rule base
  (:class:`avemo.models.fusion.fuzzy.FuzzyFusion`) that is inspectable: :meth:`FuzzyFusionSystem.rules_text`
  prints every rule with its current consequent, and the firing strengths are returned.
- ``trust`` sets how much each modality counts in the default rules (face 0.6 / voice 0.4 by
  default); the breakpoints and the rule list can be replaced.

**What differs.** The paper hand-designs its rules; here the default rule base enumerates every
term combination with trust-weighted consequents, and the consequents are trainable (set
``learn_consequents=False`` for a fixed expert rule base). The unimodal CNNs are small and trained
jointly with the fusion (their own cross-entropies plus the fused NLL).

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.models.blocks import FrameCNN, SpectrogramCNN
from avemo.models.fusion.fuzzy import FuzzyFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["FuzzyFusionSystem"]


class FuzzyFusionSystem(EmotionSystem):
    """Face and voice classifiers whose probabilities are fused by a fuzzy rule base."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, widths: Sequence[int] = (32, 64, 128),
                 trust: Mapping[str, float] | None = None, tnorm: str = "product", learn_consequents: bool = True,
                 dropout: float = 0.3, label_smoothing: float = 0.0, **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        self.encoders = nn.ModuleDict({"video": FrameCNN(in_channels=self.spec.channels, widths=widths),
                                       "audio": SpectrogramCNN(widths=widths)})
        self.heads = nn.ModuleDict({m: nn.Sequential(nn.Dropout(dropout), nn.Linear(e.out_dim, self.num_classes))
                                    for m, e in self.encoders.items()})
        self.fuzzy = FuzzyFusion(modalities=("video", "audio"), trust=trust or {"video": 0.6, "audio": 0.4},
                                 tnorm=tnorm, learn_consequents=learn_consequents)
        self.embedding_dims = {m: e.out_dim for m, e in self.encoders.items()}

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        emb: dict[str, torch.Tensor] = {}
        if video is not None:
            emb["video"] = self.encoders["video"].pooled(video)
        if audio is not None:
            emb["audio"] = self.encoders["audio"](audio)
        logits = {m: self.heads[m](e) for m, e in emb.items()}
        fused, firing = self.fuzzy({m: torch.softmax(lg, -1) for m, lg in logits.items()})
        z = torch.cat(list(emb.values()), dim=-1)
        return self.output(torch.log(fused), z, embeddings=emb, modality_logits=logits,
                           attention={"rule_firing": firing})

    def loss(self, out: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        return self.decision_loss(out, target)

    def rules_text(self) -> str:
        """The rule base as text, one rule per line."""
        return self.fuzzy.rules_text()


@register_model("kozlov2024_fuzzy", kind="system", modalities=("audio", "video"),
                tiny={"widths": (4, 8), "dropout": 0.0, **TINY_SPEC})
def kozlov2024_fuzzy(**kwargs: Any) -> FuzzyFusionSystem:
    """Fuzzy-logic fusion of face and voice classifiers (Kozlov, Akram & Shamoi 2024)."""
    return FuzzyFusionSystem(**kwargs)
