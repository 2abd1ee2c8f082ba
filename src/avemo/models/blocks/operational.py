"""Self-organised operational layers (Self-ONN; Kiranyaz et al. 2021, Malik et al. 2021).

An operational neuron replaces the convolution's fixed multiply-and-sum by a nodal operator. In a
*self-organised* layer that operator is a learned Maclaurin series of order ``q``:

    y = b + sum_{k=1..q} conv(x^k, W_k)

so each input is raised to the powers 1..q and every power has its own kernel. With ``q=1`` the
layer is exactly an ordinary convolution (tested). Inputs should be bounded (the blocks below end
in ``tanh``, as in the Self-ONN papers) so that the powers stay in [-1, 1]. The q kernels are held
as one convolution over the q stacked powers, which is the same sum computed in one call.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SelfONN1d", "SelfONN2d", "SelfONNBlock"]


class _SelfONN(nn.Module):
    conv_cls: type[nn.Module]

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int, q: int = 3, stride: int = 1,
                 padding: int | None = None, bias: bool = True) -> None:
        super().__init__()
        if q < 1:
            raise ValueError(f"the Maclaurin order q must be at least 1, not {q}")
        self.q = q
        pad = kernel_size // 2 if padding is None else padding
        self.conv = self.conv_cls(in_channels * q, out_channels, kernel_size, stride=stride, padding=pad, bias=bias)
        # higher powers start small so a fresh layer behaves close to a convolution
        with torch.no_grad():
            w = self.conv.weight.view(out_channels, q, in_channels, *self.conv.weight.shape[2:])
            for k in range(1, q):
                w[:, k] /= (k + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x**k for k in range(1, self.q + 1)], dim=1))

    def kernels(self) -> torch.Tensor:
        """The per-power kernels ``(q, out, in, k, ...)``; ``[0]`` is the linear (convolution) term."""
        w = self.conv.weight
        return w.view(w.shape[0], self.q, -1, *w.shape[2:]).transpose(0, 1)


class SelfONN2d(_SelfONN):
    """2D self-organised operational layer (images, spectrograms)."""

    conv_cls = nn.Conv2d


class SelfONN1d(_SelfONN):
    """1D self-organised operational layer (waveforms, feature sequences)."""

    conv_cls = nn.Conv1d


class SelfONNBlock(nn.Module):
    """Self-ONN layer, optional batch norm, ``tanh`` (keeps the next layer's powers bounded), max-pool."""

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int = 3, q: int = 3, pool: int = 2,
                 norm: bool = True) -> None:
        super().__init__()
        self.onn = SelfONN2d(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel_size, q=q)
        self.norm = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.pool = nn.MaxPool2d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.tanh(self.norm(self.onn(x))))
