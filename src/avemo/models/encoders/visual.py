"""The face expression encoder: a compact residual CNN for 44×44 grey face crops (FER-2013 framing).

Dataflow::

    aligned grey crop (N, H, W) uint8 ──► resize 48×48 ──► (x/255 - mean) / std ──► crop 44 (TTA views)
        ──► stem 2×conv3×3 (32) @44 ──► res stage 64 @22 ──► res stage 128 @11 ──► res stage 256 @6
        ──► global average pool ──► dropout ──► linear ──► 7 logits (BASIC7 order)

The architecture is registered as ``face`` (``create_model("face")``); the shipped bundle is
``face.fer2013``. :class:`FaceEmotionModel` wraps a bundle for inference: it applies the bundle's
own preprocessing, averages the prediction of the crop and its mirror image, and returns
probabilities. The network is plain convolutions, batch norm and pooling, so it exports to ONNX
(:func:`export_onnx`) with a dynamic batch axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from avemo.labels import BASIC7
from avemo.models.registry import Bundle, register_model


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


@register_model("face")
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
}


def preprocess(crops: np.ndarray, preprocessing: dict[str, Any] | None = None) -> torch.Tensor:
    """``(N, H, W)`` (or ``(H, W)``, or ``(N, H, W, 3)`` BGR) uint8 crops → ``(N, 1, S, S)`` normalised floats.

    ``S`` is the bundle's ``resize`` (48): the crop the network sees is cut out by :func:`tta_logits`.
    """
    import cv2

    p = {**DEFAULT_PREPROCESSING, **(preprocessing or {})}
    arr = np.asarray(crops)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] == 3:
        arr = np.stack([cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_BGR2GRAY) for a in arr])
    if arr.ndim != 3:
        raise ValueError(f"expected grey crops (N, H, W), got shape {np.asarray(crops).shape}")
    size = int(p["resize"])
    if arr.shape[0] and arr.shape[1:] != (size, size):
        interp = cv2.INTER_AREA if min(arr.shape[1:]) > size else cv2.INTER_LINEAR
        arr = np.stack([cv2.resize(np.ascontiguousarray(a), (size, size), interpolation=interp) for a in arr])
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).reshape(-1, 1, size, size) / 255.0
    return (x - float(p["mean"])) / float(p["std"])


TTA_MODES = ("none", "flip", "tencrop")


def tta_logits(model: nn.Module, x: torch.Tensor, *, mode: str = "flip", crop: int = 44) -> torch.Tensor:
    """Logits for normalised ``(N, 1, S, S)`` faces, averaged over test-time views.

    ``none``: the centre ``crop``; ``flip``: the centre crop and its mirror image; ``tencrop``: the
    centre and four corner crops, each with its mirror image.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"tta mode must be one of {TTA_MODES}, got {mode!r}")
    s = x.shape[-1]
    off = (s - crop) // 2
    if mode == "tencrop":
        origins = [(off, off), (0, 0), (0, s - crop), (s - crop, 0), (s - crop, s - crop)]
    else:
        origins = [(off, off)]
    views = [x[:, :, r:r + crop, c:c + crop] for r, c in origins]
    if mode != "none":
        views += [torch.flip(v, dims=[3]) for v in views]
    n = x.shape[0]
    z = model(torch.cat(views).contiguous(memory_format=torch.channels_last))
    return z.reshape(len(views), n, -1).mean(0)


class FaceEmotionModel:
    """A face expression bundle ready for inference: ``predict(crops) -> probs (N, 7)``.

    ``labels`` names the columns (BASIC7 order for ``face.fer2013``). Crops are aligned grey faces
    (:func:`avemo.faces.align_face` with ``grey=True``); other sizes are resized to the bundle's size.
    """

    def __init__(self, bundle: Bundle | str = "face.fer2013", *, batch_size: int = 256) -> None:
        if isinstance(bundle, str | Path):
            from avemo.models.registry import load

            bundle = load(str(bundle))
        self.bundle = bundle
        self.model = bundle.model.eval()
        self.labels: tuple[str, ...] = tuple(bundle.labels) or BASIC7
        self.preprocessing = {**DEFAULT_PREPROCESSING, **bundle.preprocessing}
        self.batch_size = batch_size

    @torch.inference_mode()
    def logits(self, crops: np.ndarray) -> np.ndarray:
        """Raw logits ``(N, C)``, averaged over the bundle's test-time views (``preprocessing["tta"]``)."""
        x = preprocess(crops, self.preprocessing)
        mode, crop = str(self.preprocessing.get("tta", "flip")), int(self.preprocessing["crop"])
        out = [tta_logits(self.model, x[i:i + self.batch_size], mode=mode, crop=crop)
               for i in range(0, x.shape[0], self.batch_size)]
        if not out:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return torch.cat(out).float().numpy()

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, C)`` (rows sum to 1) for ``(N, H, W)`` uint8 grey crops."""
        z = self.logits(crops)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def export_onnx(self, path: str | Path) -> Path:
        """Write the network (logits, without preprocessing) as ONNX; see :func:`export_onnx`."""
        return export_onnx(self.model, path, size=int(self.preprocessing["crop"]))


def export_onnx(model: nn.Module, path: str | Path, *, size: int = 44, opset: int = 17) -> Path:
    """Export ``(N, 1, size, size)`` normalised crops → logits to ONNX, batch axis dynamic."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.zeros(2, 1, size, size)
    torch.onnx.export(model, (dummy,), str(path), input_names=["crops"], output_names=["logits"],
                      dynamic_axes={"crops": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                      dynamo=False)
    return path
