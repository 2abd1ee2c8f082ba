"""MSER: cross-attention with deep fusion, light enough for real time — model card.

**Paper.** M. Khan, W. Gueaieb, A. El Saddik, S. Kwon (2024), "MSER: Multimodal speech emotion
recognition using cross-attention with deep fusion", *Expert Systems with Applications* 245, 122946.

**Implemented as described.**
- Light per-modality encoders: depthwise-separable CNNs turn the log-mel spectrogram into a
  sequence of audio tokens (one per pooled time step) and every face crop into a visual token.
- Cross-attention: audio tokens attend over visual tokens and visual tokens over audio tokens
  (:class:`avemo.models.fusion.cross_attention.BidirectionalCrossAttention`).
- Deep fusion: the two attended sequences, tagged with learned modality embeddings, pass through a
  stack of self-attention fusion layers with a learned fusion token
  (:class:`~avemo.models.fusion.cross_attention.DeepFusion`); the fusion token is classified.
- Every attention map (both cross directions, every fusion layer) is returned for plotting.

**What differs.** MSER fuses speech with *text* (ASR transcripts) in the paper; here the second
modality is the face, as this project's task is audio-visual — the cross-attention/deep-fusion
structure is the part reproduced. Sizes are configurable (defaults: 3 separable conv blocks
24-48-96, width 96, 2 fusion layers, 4 heads; about 0.26 M parameters) so it runs far faster than
real time on a CPU (see ``benchmarks/systems_cost.py``). No positional encodings are used. With
one modality absent, cross-attention is skipped and deep fusion runs over the present tokens.

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.models.blocks import FrameCNN, SpectrogramCNN
from avemo.models.fusion.cross_attention import BidirectionalCrossAttention, DeepFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["CrossAttentionDeepFusion"]


class CrossAttentionDeepFusion(EmotionSystem):
    """Separable-CNN token encoders, bidirectional cross-attention, transformer deep fusion."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, widths: Sequence[int] = (24, 48, 96), dim: int = 96,
                 heads: int = 4, depth: int = 2, dropout: float = 0.1, label_smoothing: float = 0.0,
                 **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        self.audio_cnn = SpectrogramCNN(widths=widths, separable=True)
        self.face_cnn = FrameCNN(in_channels=self.spec.channels, widths=widths, separable=True)
        self.audio_proj = nn.Linear(self.audio_cnn.out_dim, dim)
        self.video_proj = nn.Linear(self.face_cnn.out_dim, dim)
        self.modality_embed = nn.ParameterDict({m: nn.Parameter(torch.zeros(dim)) for m in ("audio", "video")})
        self.cross = BidirectionalCrossAttention(dim=dim, heads=heads, dropout=dropout)
        self.deep = DeepFusion(dim=dim, depth=depth, heads=heads, dropout=dropout)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, self.num_classes))
        self.embedding_dims = {"audio": dim, "video": dim}

    def audio_tokens(self, audio: torch.Tensor) -> torch.Tensor:
        """``(B, n_mels, T)`` -> ``(B, T', dim)``: the CNN map averaged over frequency, one token per step."""
        return self.audio_proj(self.audio_cnn.forward_features(audio).mean(2).transpose(1, 2))

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        tokens: dict[str, torch.Tensor] = {}
        if audio is not None:
            tokens["audio"] = self.audio_tokens(audio) + self.modality_embed["audio"]
        if video is not None:
            tokens["video"] = self.video_proj(self.face_cnn(video)) + self.modality_embed["video"]
        attn: dict[str, Any] = {}
        if len(tokens) == 2:
            tokens["audio"], tokens["video"], attn = self.cross(tokens["audio"], tokens["video"])
        z, layer_w = self.deep(torch.cat(list(tokens.values()), dim=1))
        attn.update({f"fusion_layer{i}": w for i, w in enumerate(layer_w)})
        emb = {m: t.mean(1) for m, t in tokens.items()}
        return self.output(self.head(z), z, embeddings=emb, attention=attn)


@register_model("khan2024_mser", kind="system", modalities=("audio", "video"),
                tiny={"widths": (4, 8), "dim": 16, "heads": 2, "depth": 1, "dropout": 0.0, **TINY_SPEC})
def khan2024_mser(**kwargs: Any) -> CrossAttentionDeepFusion:
    """MSER-style cross-attention with deep fusion (Khan et al. 2024), audio-visual."""
    return CrossAttentionDeepFusion(**kwargs)
