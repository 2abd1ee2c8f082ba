"""The voice emotion encoder: a compact residual CNN over log-mel spectrograms.

Dataflow::

    log-mel (B, n_mels, frames)  ──► per-window normalisation (per-mel mean, global std)
        ──► stem conv (stride 2) ──► residual stages (stride 2 each) ──► mean over frequency
        ──► attentive statistics pooling over time (weighted mean and std) ──► embedding ──► logits

The normalisation is part of the module, so callers pass plain ``avemo.audio.log_mel`` output for
a window (3 s in the shipped bundle) and nothing else. Registered as ``voice`` (``members=n``: an
ensemble of ``n`` such networks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from avemo.models.registry import register_model


def normalize_logmel(mel: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-window normalisation of a log-mel batch (B, n_mels, T): per-mel mean removed, global std 1."""
    mel = mel - mel.mean(dim=-1, keepdim=True)
    std = mel.flatten(1).std(dim=1).clamp_min(eps)
    return mel / std[:, None, None]


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
                     if stride != (1, 1) or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.skip(x))


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over time: (B, C, T) -> (B, 2C)."""

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.attn = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.attn(x), dim=-1)
        mean = (x * w).sum(-1)
        var = ((x - mean[..., None]) ** 2 * w).sum(-1)
        return torch.cat([mean, var.clamp_min(1e-6).sqrt()], dim=1)


class VoiceCNN(nn.Module):
    """Compact residual CNN with attentive statistics pooling; see the module docstring."""

    def __init__(self, *, n_mels: int = 64, n_classes: int = 8, channels: Sequence[int] = (16, 24, 48, 96),
                 emb_dim: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        channels = list(channels)
        self.n_mels = n_mels
        self.stem = nn.Sequential(nn.Conv2d(1, channels[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU())
        blocks = []
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            blocks.append(_ResBlock(c_in, c_out, stride=(2, 2)))
        self.blocks = nn.Sequential(*blocks)
        self.pool = AttentiveStatsPool(channels[-1])
        self.embed = nn.Sequential(nn.Linear(2 * channels[-1], emb_dim), nn.BatchNorm1d(emb_dim), nn.ReLU())
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(emb_dim, n_classes)

    def embedding(self, mel: torch.Tensor) -> torch.Tensor:
        """The (B, emb_dim) utterance embedding of a log-mel batch (B, n_mels, T)."""
        x = normalize_logmel(mel).unsqueeze(1)
        x = self.blocks(self.stem(x))  # (B, C, F', T')
        return self.embed(self.pool(x.mean(dim=2)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) of a log-mel batch (B, n_mels, T)."""
        return self.head(self.dropout(self.embedding(mel)))


class VoiceEnsemble(nn.Module):
    """Several :class:`VoiceCNN` trained with different seeds; ``forward`` returns the mean of their
    log-probabilities (a geometric-mean ensemble: ``softmax`` of it gives the ensemble's probabilities)."""

    def __init__(self, *, members: int, **kwargs) -> None:
        super().__init__()
        self.members = nn.ModuleList(VoiceCNN(**kwargs) for _ in range(members))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.stack([F.log_softmax(m(mel), dim=-1) for m in self.members]).mean(0)


@register_model("voice", kind="voice", modalities=("audio",))
def create_voice(*, members: int = 1, **kwargs) -> nn.Module:
    """The voice emotion CNN (keyword arguments: n_mels, n_classes, channels, emb_dim, dropout), or an
    ensemble of ``members`` of them."""
    return VoiceCNN(**kwargs) if members == 1 else VoiceEnsemble(members=members, **kwargs)
