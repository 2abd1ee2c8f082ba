"""Late-fusion CNN with early-fusion and unimodal variants — model card.

**Paper.** C. Dixit, S. M. Satapathy (2024), deep CNN with late fusion for real-time multimodal
emotion recognition (a speech CNN over spectrograms and a facial CNN over frames, whose class
scores are combined at decision level), compared with early fusion and with each modality alone.

**Implemented as described.**
- Audio CNN over the log-mel spectrogram; face CNN over each frame, averaged over the clip.
- ``fusion="late"``: each branch has its own classifier and the class probabilities are averaged
  (:class:`avemo.models.fusion.decision.WeightedDecisionFusion`, equal or given ``weights``,
  optionally learned) — the default, ``dixit2024_cnn``.
- ``fusion="early"``: the branch feature vectors are concatenated and one classifier is trained
  on the joint vector (:class:`avemo.models.fusion.early.ConcatFusion`) — ``dixit2024_cnn_early``.
- ``modalities=("audio",)`` / ``("video",)``: the same network with one branch —
  ``dixit2024_cnn_audio``, ``dixit2024_cnn_video``.

**What differs.** Layer counts and widths are configurable (default 3 conv blocks per branch);
the paper's exact tables and input sizes are not reproduced; both fusions train end-to-end with a
cross-entropy on the fused output plus one per branch (late fusion).

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.models.blocks import FrameCNN, SpectrogramCNN
from avemo.models.fusion.decision import WeightedDecisionFusion
from avemo.models.fusion.early import ConcatFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["FusionCNN"]


class FusionCNN(EmotionSystem):
    """Audio CNN + face CNN, fused late (decision level) or early (feature level), or one branch alone."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, modalities: Sequence[str] = ("audio", "video"),
                 fusion: str = "late", widths: Sequence[int] = (32, 64, 128), hidden: int = 128,
                 weights: Sequence[float] | None = None, learn_weights: bool = False, dropout: float = 0.3,
                 label_smoothing: float = 0.0, **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        if fusion not in ("late", "early"):
            raise ValueError(f"fusion must be 'late' or 'early', not {fusion!r}")
        self.modalities = tuple(modalities)
        self.fusion_kind = fusion
        self.encoders = nn.ModuleDict()
        if "audio" in self.modalities:
            self.encoders["audio"] = SpectrogramCNN(widths=widths)
        if "video" in self.modalities:
            self.encoders["video"] = FrameCNN(in_channels=self.spec.channels, widths=widths)
        self.embedding_dims = {m: e.out_dim for m, e in self.encoders.items()}
        if fusion == "late":
            self.heads = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True),
                                                         nn.Dropout(dropout), nn.Linear(hidden, self.num_classes))
                                        for m, d in self.embedding_dims.items()})
            self.fusion = WeightedDecisionFusion(modalities=self.modalities, weights=weights, learn=learn_weights)
        else:
            self.fusion = ConcatFusion(dims=self.embedding_dims, hidden=hidden, dropout=dropout)
            self.head = nn.Linear(hidden, self.num_classes)

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        inputs = {"audio": audio, "video": video}
        emb = {m: (enc(inputs[m]) if m == "audio" else enc.pooled(inputs[m]))
               for m, enc in self.encoders.items() if inputs[m] is not None}
        if self.fusion_kind == "early":
            z = self.fusion(emb)
            return self.output(self.head(z), z, embeddings=emb)
        logits = {m: self.heads[m](e) for m, e in emb.items()}
        fused, w = self.fusion({m: torch.softmax(lg, -1) for m, lg in logits.items()})
        z = torch.cat(list(emb.values()), dim=-1)
        return self.output(torch.log(fused.clamp_min(1e-8)), z, embeddings=emb, modality_logits=logits,
                           attention={"fusion_weights": w})

    def loss(self, out: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        if self.fusion_kind == "early":
            return super().loss(out, target)
        return self.decision_loss(out, target)


@register_model("dixit2024_cnn", kind="system", modalities=("audio", "video"),
                tiny={"widths": (4, 8), "hidden": 16, "dropout": 0.0, **TINY_SPEC})
def dixit2024_cnn(**kwargs: Any) -> FusionCNN:
    """Late-fusion CNN (Dixit & Satapathy 2024)."""
    return FusionCNN(**kwargs)


@register_model("dixit2024_cnn_early", kind="system", modalities=("audio", "video"),
                tiny={"widths": (4, 8), "hidden": 16, "dropout": 0.0, **TINY_SPEC})
def dixit2024_cnn_early(**kwargs: Any) -> FusionCNN:
    """The same network with early (feature-level) fusion."""
    return FusionCNN(fusion="early", **kwargs)


@register_model("dixit2024_cnn_audio", kind="system", modalities=("audio",),
                tiny={"widths": (4, 8), "hidden": 16, "dropout": 0.0, **TINY_SPEC})
def dixit2024_cnn_audio(**kwargs: Any) -> FusionCNN:
    """The same network, audio branch only."""
    return FusionCNN(modalities=("audio",), **kwargs)


@register_model("dixit2024_cnn_video", kind="system", modalities=("video",),
                tiny={"widths": (4, 8), "hidden": 16, "dropout": 0.0, **TINY_SPEC})
def dixit2024_cnn_video(**kwargs: Any) -> FusionCNN:
    """The same network, face branch only."""
    return FusionCNN(modalities=("video",), **kwargs)
