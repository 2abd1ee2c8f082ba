"""Cross-modal attention fusion: each modality's sequence attends over the other's, then the two
attended sequences are mixed by a small stack of self-attention ("deep fusion") layers.

Used by the cross-modal systems (Mocanu et al. 2023; MSER, Khan et al. 2024). Every layer's
attention weights are returned for plotting.
"""

from __future__ import annotations

import torch
from torch import nn

from avemo.models.blocks.attention import CrossModalAttention

__all__ = ["BidirectionalCrossAttention", "DeepFusion", "FusionLayer"]


class BidirectionalCrossAttention(nn.Module):
    """Audio queries attend over video and video queries over audio (shared width ``dim``).

    ``forward(audio, video)`` with ``(B, Sa, D)``, ``(B, Sv, D)`` returns the two attended
    sequences and ``{"audio_to_video": (B, h, Sa, Sv), "video_to_audio": (B, h, Sv, Sa)}``.
    """

    def __init__(self, *, dim: int, heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.a2v = CrossModalAttention(dim=dim, heads=heads, dropout=dropout)
        self.v2a = CrossModalAttention(dim=dim, heads=heads, dropout=dropout)

    def forward(self, audio: torch.Tensor, video: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        a, wa = self.a2v(audio, video)
        v, wv = self.v2a(video, audio)
        return a, v, {"audio_to_video": wa, "video_to_audio": wv}


class FusionLayer(nn.Module):
    """A pre-norm transformer layer over the joint token sequence; returns its attention weights."""

    def __init__(self, *, dim: int, heads: int = 2, ff: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = CrossModalAttention(dim=dim, heads=heads, dropout=dropout)
        self.ff = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * ff), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(dim * ff, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, w = self.attn(x, x)
        return x + self.ff(x), w


class DeepFusion(nn.Module):
    """A learned fusion token prepended to the joint sequence, ``depth`` fusion layers, the token out.

    ``forward(tokens)`` with ``(B, S, D)`` returns ``(B, D)`` and the per-layer weights.
    """

    def __init__(self, *, dim: int, depth: int = 2, heads: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)  # not zeros: q(token) must depend on W_q
        self.layers = nn.ModuleList(FusionLayer(dim=dim, heads=heads, dropout=dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = torch.cat([self.token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        weights = []
        for layer in self.layers:
            x, w = layer(x)
            weights.append(w)
        return self.norm(x[:, 0]), weights
