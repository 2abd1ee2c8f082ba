"""The face expression encoder: a compact residual CNN for 44×44 grey face crops (FER-2013 framing).

Dataflow::

    aligned grey crop (N, H, W) uint8 ──► resize 48×48 ──► (x/255 - mean) / std ──► crop 44 (TTA views)
        ──► stem 2×conv3×3 (32) @44 ──► res stage 64 @22 ──► res stage 128 @11 ──► res stage 256 @6
        ──► global average pool ──► dropout ──► linear ──► 7 logits (BASIC7 order)

The architecture is registered as ``face`` (``create_model("face")``); the shipped bundle is
``face.fer2013``, run at analysis time by :class:`avemo.inference.predictors.FacePredictor` (its
ONNX network, views cut by :mod:`avemo.models.face_input`). The network is plain convolutions,
batch norm and pooling, so it exports to ONNX with a dynamic batch axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from avemo.models.face_input import view_origins
from avemo.models.registry import register_model


def _conv_bn(cin: int, cout: int, stride: int = 1, *, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convolutions) with a projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = _conv_bn(cout, cout, relu=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class FaceExpressionNet(nn.Module):
    """Compact ResNet for small grey faces: ``(N, 1, H, W)`` float → ``(N, num_classes)`` logits.

    Any input size from about 32 pixels works (global pooling); it is trained on 44×44 crops.
    """

    def __init__(self, *, num_classes: int = 7, widths: Sequence[int] = (32, 64, 128, 256),
                 blocks: Sequence[int] = (1, 1, 1), dropout: float = 0.3, in_channels: int = 1) -> None:
        super().__init__()
        if len(widths) != len(blocks) + 1:
            raise ValueError(f"need one more width than stages, got widths={widths} blocks={blocks}")
        self.stem = nn.Sequential(_conv_bn(in_channels, widths[0]), _conv_bn(widths[0], widths[0]))
        stages: list[nn.Module] = []
        cin = widths[0]
        for cout, n in zip(widths[1:], blocks, strict=True):
            layers = [BasicBlock(cin, cout, 2)] + [BasicBlock(cout, cout) for _ in range(n)]
            stages.append(nn.Sequential(*layers))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # residual branches start near identity (zero-init the last BN)
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.conv2[1].weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding, ``(N, widths[-1])``."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@register_model("face", kind="face", modalities=("video",))
def face(**kwargs: Any) -> FaceExpressionNet:
    """The face expression network (see :class:`FaceExpressionNet` for the keyword arguments)."""
    return FaceExpressionNet(**kwargs)


#: Preprocessing of the FER-2013 training recipe; bundles store their own copy in bundle.json.
DEFAULT_PREPROCESSING: dict[str, Any] = {
    "input": "grey face crop, uint8, FER-2013 framing (whole face, chin to forehead, eyes about 40% down)",
    "resize": 48,
    "crop": 44,
    "grey": True,
    "mean": 0.5077,
    "std": 0.2550,
    "tta": "flip",
    "blendshape_weight": 0.0,
    "logit_bias": [0.0] * 7,
    "pooling": "mean",
}


def tta_logits(model: nn.Module, x: torch.Tensor, *, mode: str = "flip", crop: int = 44) -> torch.Tensor:
    """Logits for normalised ``(N, 1, S, S)`` faces, averaged over the test-time views of ``mode``
    (:func:`avemo.models.face_input.face_views` cuts the same views in numpy)."""
    views = [x[:, :, r:r + crop, c:c + crop] for r, c in view_origins(x.shape[-1], crop, mode)]
    if mode != "none":
        views += [torch.flip(v, dims=[3]) for v in views]
    n = x.shape[0]
    z = model(torch.cat(views).contiguous(memory_format=torch.channels_last))
    return z.reshape(len(views), n, -1).mean(0)
