"""Small convolutional parts shared by the systems: conv blocks, a compact CNN, per-step application
of a module over time, and splitting a sequence into snippets."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ConvBlock2d", "FrameCNN", "SmallCNN", "SpectrogramCNN", "TimeDistributed", "snippets"]


class ConvBlock2d(nn.Module):
    """Conv (plain or depthwise-separable) -> BatchNorm -> ReLU -> optional max-pool."""

    def __init__(self, *, cin: int, cout: int, kernel_size: int = 3, pool: int = 2, separable: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        pad = kernel_size // 2
        if separable:
            conv: nn.Module = nn.Sequential(nn.Conv2d(cin, cin, kernel_size, padding=pad, groups=cin, bias=False),
                                            nn.Conv2d(cin, cout, 1, bias=False))
        else:
            conv = nn.Conv2d(cin, cout, kernel_size, padding=pad, bias=False)
        layers = [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        if pool > 1:
            layers.append(nn.MaxPool2d(pool))
        if dropout:
            layers.append(nn.Dropout2d(dropout))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SmallCNN(nn.Module):
    """A stack of :class:`ConvBlock2d` then global average pooling: ``(B, C, H, W)`` -> ``(B, out_dim)``.

    ``widths`` gives each block's channels (its length is the depth). Used as the face CNN over grey
    crops and as the voice CNN over log-mel patches.
    """

    def __init__(self, *, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128), kernel_size: int = 3,
                 separable: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        blocks, cin = [], in_channels
        for i, w in enumerate(widths):
            blocks.append(ConvBlock2d(cin=cin, cout=w, kernel_size=kernel_size, pool=2,
                                      separable=separable and i > 0, dropout=dropout))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = cin

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean(dim=(-2, -1))


class TimeDistributed(nn.Module):
    """Apply a module to every step of ``(B, T, ...)``: the steps are folded into the batch."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        y = self.module(x.reshape(b * t, *x.shape[2:]))
        return y.reshape(b, t, *y.shape[1:])


def snippets(x: torch.Tensor, *, count: int, dim: int = -1) -> torch.Tensor:
    """Split ``x`` along ``dim`` into ``count`` equal, non-overlapping snippets, stacked at axis 1.

    Frames that do not fill the last snippet are dropped; a sequence shorter than ``count`` is
    repeated first, so a single frame or a very short clip still gives ``count`` snippets.
    ``(B, ..., T, ...)`` -> ``(B, count, ..., T // count, ...)``.
    """
    dim = dim % x.dim()
    t = x.shape[dim]
    if t < count:
        reps = [1] * x.dim()
        reps[dim] = -(-count // t)
        x = x.repeat(*reps)
        t = x.shape[dim]
    size = t // count
    x = x.narrow(dim, 0, size * count)
    shape = list(x.shape)
    shape[dim:dim + 1] = [count, size]
    return x.reshape(shape).movedim(dim, 1)


class FrameCNN(nn.Module):
    """A :class:`SmallCNN` applied to every face crop: ``(B, T, C, H, W)`` -> per-frame ``(B, T, D)``.

    ``forward`` returns the sequence; :meth:`pooled` its mean over frames ``(B, D)``.
    """

    def __init__(self, *, in_channels: int = 1, widths: Sequence[int] = (32, 64, 128), separable: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.per_frame = TimeDistributed(SmallCNN(in_channels=in_channels, widths=widths, separable=separable,
                                                  dropout=dropout))
        self.out_dim = self.per_frame.module.out_dim

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() == 4:  # one frame per example
            video = video.unsqueeze(1)
        return self.per_frame(video)

    def pooled(self, video: torch.Tensor) -> torch.Tensor:
        return self(video).mean(1)


class SpectrogramCNN(nn.Module):
    """A :class:`SmallCNN` over a log-mel spectrogram ``(B, n_mels, T)`` (one input plane) -> ``(B, D)``."""

    def __init__(self, *, widths: Sequence[int] = (32, 64, 128), separable: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.cnn = SmallCNN(in_channels=1, widths=widths, separable=separable, dropout=dropout)
        self.out_dim = self.cnn.out_dim

    def forward_features(self, audio: torch.Tensor) -> torch.Tensor:
        """The last feature map ``(B, D, mels', T')``."""
        return self.cnn.forward_features(audio.unsqueeze(1))

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.cnn(audio.unsqueeze(1))
