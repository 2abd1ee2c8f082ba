"""Attention modules; every one returns ``(output, weights)`` so the weights can be plotted.

- :class:`ChannelAttention`: squeeze-and-excitation / CBAM channel gate over a 2D or 3D feature map,
  weights ``(B, C)``.
- :class:`SpatialAttention`: CBAM spatial gate, weights ``(B, 1, H, W)`` or ``(B, 1, T, H, W)``.
- :class:`CBAM`: channel then spatial (Woo et al. 2018); weights ``{"channel", "spatial"}``.
- :class:`TemporalAttention`: additive attention pooling over a sequence ``(B, S, D)``, weights
  ``(B, S)`` summing to 1.
- :class:`CrossModalAttention`: multi-head scaled dot-product attention in which one modality's
  sequence (queries) weights the other's (keys, values); weights ``(B, heads, Sq, Sk)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["CBAM", "ChannelAttention", "CrossModalAttention", "SpatialAttention", "TemporalAttention"]


class ChannelAttention(nn.Module):
    """Channel gate: pooled descriptors through a shared bottleneck MLP, then a sigmoid.

    ``pools=("avg",)`` is squeeze-and-excitation (Hu et al. 2018); ``("avg", "max")`` is CBAM.
    """

    def __init__(self, *, channels: int, reduction: int = 8, pools: tuple[str, ...] = ("avg", "max")) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pools = pools
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.flatten(2)
        score = 0
        for p in self.pools:
            score = score + self.mlp(flat.mean(-1) if p == "avg" else flat.amax(-1))
        w = torch.sigmoid(score)
        return x * w.view(*w.shape, *([1] * (x.dim() - 2))), w


class SpatialAttention(nn.Module):
    """Spatial gate: channel-wise mean and max maps through one convolution, then a sigmoid."""

    def __init__(self, *, dims: int = 2, kernel_size: int = 7) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        k = kernel_size if dims == 2 else (1, kernel_size, kernel_size)
        pad = kernel_size // 2 if dims == 2 else (0, kernel_size // 2, kernel_size // 2)
        self.conv = conv(2, 1, k, padding=pad)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        desc = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)
        w = torch.sigmoid(self.conv(desc))
        return x * w, w


class CBAM(nn.Module):
    """Convolutional block attention: channel gate then spatial gate (Woo et al. 2018)."""

    def __init__(self, *, channels: int, dims: int = 2, reduction: int = 8, kernel_size: int = 7) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels=channels, reduction=reduction)
        self.spatial = SpatialAttention(dims=dims, kernel_size=kernel_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, wc = self.channel(x)
        x, ws = self.spatial(x)
        return x, {"channel": wc, "spatial": ws}


class TemporalAttention(nn.Module):
    """Additive attention pooling over time: ``score_s = v . tanh(W x_s)``, softmax over ``s``."""

    def __init__(self, *, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, S, D)``; ``mask`` ``(B, S)`` True where valid. Returns ``(B, D)`` and ``(B, S)``."""
        s = self.score(torch.tanh(self.proj(x))).squeeze(-1)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        w = torch.softmax(s, dim=-1)
        return torch.einsum("bs,bsd->bd", w, x), w


class CrossModalAttention(nn.Module):
    """Queries from one modality attend over keys/values of the other, with a residual and LayerNorm.

    ``forward(query, context)`` with ``query`` ``(B, Sq, Dq)`` and ``context`` ``(B, Sk, Dk)``
    returns ``(B, Sq, dim)`` and the attention weights ``(B, heads, Sq, Sk)``.
    """

    def __init__(self, *, dim: int, context_dim: int | None = None, heads: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(context_dim or dim, dim)
        self.v = nn.Linear(context_dim or dim, dim)
        self.out = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q, k, v = self._split(self.q(query)), self._split(self.k(context)), self._split(self.v(context))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        y = (self.drop(w) @ v).transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)
        return self.norm(query + self.out(y)), w
