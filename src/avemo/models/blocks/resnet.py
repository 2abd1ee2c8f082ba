"""Basic-block ResNets in 2D (spectrograms, images) and 3D (face-video snippets).

torchvision is not a dependency, so the ResNet-18 of He et al. (2016) and its 3D variant (the
"r3d_18" of Hara et al. 2018 / Tran et al. 2018) are written here. Both are configurable:
``width`` is the channel count of the first stage (64 in the paper), ``layers`` the number of basic
blocks per stage ((2, 2, 2, 2) is ResNet-18), and ``in_channels`` the input planes. With
``width=8`` the whole network has a few tens of thousands of parameters, which keeps tests fast.

``forward_features`` returns the last feature map (for attention over it); ``forward`` pools it to
a vector of size :attr:`out_dim`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BasicBlock", "ResNet", "resnet18_2d", "resnet18_3d"]


def _conv(dims: int, cin: int, cout: int, k: int, stride: int | tuple[int, ...] = 1) -> nn.Module:
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return conv(cin, cout, k, stride=stride, padding=k // 2, bias=False)


def _norm(dims: int, c: int) -> nn.Module:
    return nn.BatchNorm2d(c) if dims == 2 else nn.BatchNorm3d(c)


class BasicBlock(nn.Module):
    """Two 3x3(x3) convolutions with a residual connection (projected when the shape changes)."""

    def __init__(self, *, dims: int, cin: int, cout: int, stride: int | tuple[int, ...] = 1) -> None:
        super().__init__()
        self.conv1 = _conv(dims, cin, cout, 3, stride)
        self.bn1 = _norm(dims, cout)
        self.conv2 = _conv(dims, cout, cout, 3)
        self.bn2 = _norm(dims, cout)
        strided = stride != 1 and stride != (1,) * dims
        self.shortcut: nn.Module = nn.Identity()
        if strided or cin != cout:
            conv = nn.Conv2d if dims == 2 else nn.Conv3d
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride=stride, bias=False), _norm(dims, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class ResNet(nn.Module):
    """A basic-block ResNet; ``dims`` 2 or 3.

    Input ``(B, C, H, W)`` (2D) or ``(B, C, T, H, W)`` (3D). In 3D the stem does not stride in time
    (short snippets), the later stages halve time, height and width as in r3d_18.
    """

    def __init__(self, *, dims: int = 2, in_channels: int = 1, width: int = 64,
                 layers: Sequence[int] = (2, 2, 2, 2), stem_stride: int = 2, stem_pool: bool = True) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, not {dims}")
        self.dims = dims
        stem_s: int | tuple[int, ...] = stem_stride if dims == 2 else (1, stem_stride, stem_stride)
        stem_k = 7 if dims == 2 else 3
        stem = [_conv(dims, in_channels, width, stem_k, stem_s), _norm(dims, width), nn.ReLU(inplace=True)]
        if stem_pool:
            pool = nn.MaxPool2d(3, 2, 1) if dims == 2 else nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
            stem.append(pool)
        self.stem = nn.Sequential(*stem)
        stages, cin = [], width
        for i, n in enumerate(layers):
            cout = width * 2**i
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(dims=dims, cin=cin, cout=cout, stride=stride))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = cin
        self.pool = nn.AdaptiveAvgPool2d(1) if dims == 2 else nn.AdaptiveAvgPool3d(1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``(B, out_dim, h, w)`` or ``(B, out_dim, t, h, w)``."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.forward_features(x)).flatten(1)


def resnet18_2d(*, in_channels: int = 1, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
                **kw: int | bool) -> ResNet:
    """2D ResNet-18 (e.g. over log-mel spectrogram snippets)."""
    return ResNet(dims=2, in_channels=in_channels, width=width, layers=layers, **kw)


def resnet18_3d(*, in_channels: int = 3, width: int = 64, layers: Sequence[int] = (2, 2, 2, 2),
                **kw: int | bool) -> ResNet:
    """3D ResNet-18 (r3d_18 layout, e.g. over face-video snippets)."""
    return ResNet(dims=3, in_channels=in_channels, width=width, layers=layers, **kw)
