"""Brain emotional learning fusion over deep features — model card.

**Paper.** Z. Farhoudi, S. Setayeshi (2021), "Fusion of deep learning features with mixture of
brain emotional learning for audio-visual emotion recognition", *Speech Communication* 127, 92-103.

**Implemented as described.**
- Deep features per modality: a 2D ResNet over the log-mel spectrogram and a 2D ResNet over each
  face crop (averaged over the clip) — the "sensory input".
- A brain-emotional-learning fusion (:class:`avemo.models.fusion.bel.BELFusion`): thalamus
  (coarse max signal), sensory cortex (per-modality projection), amygdala (excitatory) and
  orbitofrontal cortex (inhibitory) nodes per class; the emotional output ``E = A - O`` is the
  class score. The amygdala/orbitofrontal responses are returned for inspection.
- Both ways of learning: by gradient (end-to-end with the feature networks, the default) or by the
  original reward-driven BEL rules (:meth:`BrainEmotionalLearningSystem.rule_update`, with the
  deep features held fixed).

**What differs.** Farhoudi & Setayeshi use a *mixture* of BEL models over pre-trained 3D-CNN /
CNN features trained separately; here one BEL fusion with one amygdala/OFC node per class sits on
ResNet features (width configurable), trainable end-to-end.

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from avemo.labels import EMOTIONS
from avemo.models.blocks import TimeDistributed, resnet18_2d
from avemo.models.fusion.bel import BELFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["BrainEmotionalLearningSystem"]


class BrainEmotionalLearningSystem(EmotionSystem):
    """ResNet features of voice and face, fused by amygdala / orbitofrontal BEL units."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, width: int = 32, layers: Sequence[int] = (2, 2, 2, 2),
                 cortex_dim: int = 64, label_smoothing: float = 0.0, **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        self.audio_net = resnet18_2d(in_channels=1, width=width, layers=layers)
        self.face_net = TimeDistributed(resnet18_2d(in_channels=self.spec.channels, width=width, layers=layers,
                                                    stem_stride=1))
        self.embedding_dims = {"audio": self.audio_net.out_dim, "video": self.face_net.module.out_dim}
        self.bel = BELFusion(dims=self.embedding_dims, num_classes=self.num_classes, cortex_dim=cortex_dim)

    def features(self, audio: torch.Tensor | None, video: torch.Tensor | None) -> dict[str, torch.Tensor]:
        emb = {}
        if audio is not None:
            emb["audio"] = self.audio_net(audio.unsqueeze(1))
        if video is not None:
            emb["video"] = self.face_net(video if video.dim() == 5 else video.unsqueeze(1)).mean(1)
        return emb

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        emb = self.features(audio, video)
        e, parts = self.bel(emb)
        s = parts.pop("sensory")
        return self.output(e, s, embeddings=emb, attention=parts)

    @torch.no_grad()
    def rule_update(self, target: torch.Tensor, audio: torch.Tensor | None = None,
                    video: torch.Tensor | None = None, *, alpha: float = 0.1, beta: float = 0.1) -> float:
        """One step of the original BEL learning rules with the one-hot target as reward; returns the MSE."""
        reward = F.one_hot(target, self.num_classes).float()
        return float(self.bel.rule_update(self.features(audio, video), reward, alpha=alpha, beta=beta))


@register_model("farhoudi2021_bel", kind="system", modalities=("audio", "video"),
                tiny={"width": 4, "layers": (1, 1), "cortex_dim": 16, **TINY_SPEC})
def farhoudi2021_bel(**kwargs: Any) -> BrainEmotionalLearningSystem:
    """Brain emotional learning fusion over deep features (Farhoudi & Setayeshi 2021)."""
    return BrainEmotionalLearningSystem(**kwargs)
