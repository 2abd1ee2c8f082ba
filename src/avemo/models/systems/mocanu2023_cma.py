"""Cross-modal attention fusion with deep metric learning — model card.

**Paper.** B. Mocanu, R. Tapu, T. Zaharia (2023), "Multimodal emotion recognition using cross modal
audio-video fusion with attention and deep metric learning", *Image and Vision Computing* 133,
104676.

**Implemented as described.**
- Visual stream: a 3D ResNet-18 (basic blocks, stages 2-2-2-2) over face-video *snippets*; audio
  stream: a 2D ResNet-18 over log-mel spectrogram snippets (the clip is cut into ``snippets``
  equal, aligned parts in both streams).
- Spatial and channel attention on the visual feature maps (CBAM-style, channel then spatial).
- Temporal attention over the snippets in both streams.
- Cross-modal attention in which each modality's snippets weight the other's (audio queries over
  video snippets and video queries over audio snippets).
- A fusion layer (concatenation + fully connected) giving the embedding, then a classifier.
- The emotion-constrained loss: cross-entropy + a triplet loss + a metric constraint that keeps
  similar emotions (happy/surprised) closer than opposed ones (happy/sad), from a similarity matrix
  (default: :func:`avemo.labels.similarity_matrix`, valence/arousal based; configurable).

**What differs.**
- ``width`` (64 in the paper) and ``layers`` are configurable; tests use tiny widths.
- No Kinetics / ImageNet pre-training is shipped (torchvision is not a dependency): weights start
  from scratch unless a bundle is loaded.
- The paper builds similarity from an emotion wheel; here it is the valence/arousal circumplex
  distance, passed as a matrix so any other table can be used.
- Cross-modal attention is scaled dot-product with a residual and LayerNorm; the paper's exact
  attention formulation (scoring function, heads) is not reproduced literally.
- With one modality absent, cross-modal attention is skipped and the fusion layer receives a learned
  placeholder for the missing side.

**Data and licence.** Architecture code: Apache-2.0. Any weights trained on RAVDESS / CREMA-D
inherit their non-commercial terms (CC BY-NC-SA 4.0 / ODbL).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from avemo.labels import EMOTIONS, similarity_matrix
from avemo.losses import cross_entropy, emotion_constrained_triplet
from avemo.models.blocks import CBAM, TemporalAttention, resnet18_2d, resnet18_3d, snippets
from avemo.models.fusion.cross_attention import BidirectionalCrossAttention
from avemo.models.fusion.early import ConcatFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["CrossModalMetricNet"]


class CrossModalMetricNet(EmotionSystem):
    """Two ResNet-18 streams over aligned snippets, attention at three levels, metric-learning loss."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
                 snippets: int = 4, dim: int = 256, heads: int = 4, embed_dim: int = 128, dropout: float = 0.2,
                 triplet_weight: float = 1.0, constraint_weight: float = 1.0, margin: float = 0.3,
                 constraint_margin: float = 0.5, similarity: Sequence[Sequence[float]] | None = None,
                 label_smoothing: float = 0.0, **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        self.n_snippets = snippets
        self.video_net = resnet18_3d(in_channels=self.spec.channels, width=width, layers=layers)
        self.audio_net = resnet18_2d(in_channels=1, width=width, layers=layers)
        c = self.video_net.out_dim
        self.visual_attention = CBAM(channels=c, dims=3, kernel_size=3)
        self.video_proj = nn.Linear(c, dim)
        self.audio_proj = nn.Linear(self.audio_net.out_dim, dim)
        self.cross = BidirectionalCrossAttention(dim=dim, heads=heads)
        self.audio_time = TemporalAttention(dim=dim)
        self.video_time = TemporalAttention(dim=dim)
        self.fusion = ConcatFusion(dims={"audio": dim, "video": dim}, hidden=embed_dim, dropout=dropout)
        self.head = nn.Linear(embed_dim, self.num_classes)
        self.embedding_dims = {"audio": dim, "video": dim}
        sim = similarity if similarity is not None else similarity_matrix(self.labels)
        self.register_buffer("similarity", torch.as_tensor(sim, dtype=torch.float32), persistent=False)
        self.loss_weights = {"triplet": triplet_weight, "constraint": constraint_weight, "margin": margin,
                             "constraint_margin": constraint_margin}

    def encode_video(self, video: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(B, T, C, H, W)`` -> snippet features ``(B, S, dim)`` and the CBAM weights."""
        b = video.shape[0]
        clips = snippets(video, count=self.n_snippets, dim=1)           # (B, S, t, C, H, W)
        x = clips.flatten(0, 1).transpose(1, 2)                          # (B*S, C, t, H, W)
        fmap, w = self.visual_attention(self.video_net.forward_features(x))
        feats = self.video_proj(fmap.mean(dim=(2, 3, 4))).view(b, self.n_snippets, -1)
        return feats, {"video_channel": w["channel"].view(b, self.n_snippets, -1),
                       "video_spatial": w["spatial"].view(b, self.n_snippets, *w["spatial"].shape[2:])}

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` -> snippet features ``(B, S, dim)``."""
        b = audio.shape[0]
        parts = snippets(audio, count=self.n_snippets, dim=-1)          # (B, S, n_mels, t)
        feats = self.audio_net(parts.flatten(0, 1).unsqueeze(1))
        return self.audio_proj(feats).view(b, self.n_snippets, -1)

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        attn: dict[str, torch.Tensor] = {}
        a = self.encode_audio(audio) if audio is not None else None
        v = None
        if video is not None:
            v, w = self.encode_video(video)
            attn.update(w)
        if a is not None and v is not None:
            a, v, w = self.cross(a, v)
            attn.update(w)
        emb: dict[str, torch.Tensor] = {}
        if a is not None:
            emb["audio"], attn["audio_temporal"] = self.audio_time(a)
        if v is not None:
            emb["video"], attn["video_temporal"] = self.video_time(v)
        z = self.fusion(emb)
        return self.output(self.head(z), z, embeddings=emb, attention=attn)

    def loss(self, out: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        ce = cross_entropy(out["logits"], target, label_smoothing=self.label_smoothing)
        w = self.loss_weights
        if w["triplet"] == 0:
            return ce
        metric = emotion_constrained_triplet(out["embedding"], target, similarity=self.similarity,
                                             margin=w["margin"], constraint_margin=w["constraint_margin"],
                                             constraint_weight=w["constraint"])
        return ce + w["triplet"] * metric


@register_model("mocanu2023_cma", kind="system", modalities=("audio", "video"),
                tiny={"width": 4, "layers": (1, 1, 1, 1), "snippets": 2, "dim": 16, "heads": 2, "embed_dim": 16,
                      "dropout": 0.0, **TINY_SPEC})
def mocanu2023_cma(**kwargs: Any) -> CrossModalMetricNet:
    """Cross-modal attention fusion with deep metric learning (Mocanu, Tapu & Zaharia 2023)."""
    return CrossModalMetricNet(**kwargs)
