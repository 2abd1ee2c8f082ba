"""Two-branch operational neural network — model card.

**Paper.** A. Aktürk, A. S. Keçeli (2024), multimodal emotion recognition with self-organised
operational neural networks over a key frame and a mel spectrogram (two-branch Self-ONN).

**Implemented as described.**
- Visual input: key frame(s) of the face track, chosen by :func:`avemo.faces.select_key_frames`
  (the LUV-change / brightness / entropy / contrast-clustering / sharpness cascade); use
  :func:`key_frame_input` to turn a clip's face crops into the model's ``video`` input.
- Audio input: the clip's log-mel spectrogram, treated as a one-plane image.
- Each branch is a stack of self-organised operational layers
  (:class:`avemo.models.blocks.SelfONNBlock`) whose nodal operator is a learned Maclaurin series of
  order ``q`` (``q=1`` is exactly an ordinary convolution — tested), with ``tanh`` activations.
- The two branch vectors are fused into one vector (concatenation + a dense layer) and classified.
- Single-input variants of the *same* network: ``modalities=("video",)`` or ``("audio",)``
  (registered as ``akturk2024_onn_face`` and ``akturk2024_onn_voice``).

**What differs.**
- Depth, widths and ``q`` are configurable (defaults 4 blocks, widths 16-32-64-64, q=3); the
  paper's exact layer table is not reproduced.
- With several key frames (``video_frames > 1``) the visual branch averages their vectors.
- A missing modality in the two-branch network is replaced by a learned placeholder vector.

**Data and licence.** Architecture code: Apache-2.0; trained weights inherit their corpus's terms
(RAVDESS: CC BY-NC-SA 4.0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from avemo.errors import ModelError
from avemo.labels import EMOTIONS
from avemo.models.blocks import SelfONNBlock
from avemo.models.fusion.early import ConcatFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["OperationalTwoBranch", "key_frame_input"]


def key_frame_input(frames: Sequence[np.ndarray], *, k: int = 1, size: int = 48, grey: bool = True) -> torch.Tensor:
    """Pick ``k`` key frames of one clip's face crops and return them as ``(k, C, size, size)`` in [0, 1]."""
    import cv2

    from avemo.faces import select_key_frames

    if len(frames) == 0:
        raise ModelError("no face frames to choose a key frame from")
    chosen = select_key_frames(frames, k=k).indices
    out = []
    for i in chosen:
        f = np.asarray(frames[int(i)])
        if grey and f.ndim == 3:
            f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
        f = cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        out.append(f[None] if f.ndim == 2 else f.transpose(2, 0, 1))
    while len(out) < k:  # a clip shorter than k: repeat the last key frame
        out.append(out[-1])
    return torch.from_numpy(np.stack(out))


class ONNBranch(nn.Module):
    """Self-ONN blocks over a one- or three-plane image, then global average pooling."""

    def __init__(self, *, in_channels: int, widths: Sequence[int], q: int) -> None:
        super().__init__()
        blocks, cin = [], in_channels
        for w in widths:
            blocks.append(SelfONNBlock(in_channels=cin, out_channels=w, q=q))
            cin = w
        self.blocks = nn.Sequential(*blocks)
        self.out_dim = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).mean(dim=(-2, -1))


class OperationalTwoBranch(EmotionSystem):
    """Key-frame branch and mel-spectrogram branch of Self-ONN layers, fused into one vector."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, modalities: Sequence[str] = ("audio", "video"),
                 widths: Sequence[int] = (16, 32, 64, 64), q: int = 3, fused_dim: int = 128, dropout: float = 0.3,
                 label_smoothing: float = 0.0, **spec: Any) -> None:
        spec.setdefault("video_frames", 1)
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        self.modalities = tuple(modalities)
        if not self.modalities or set(self.modalities) - {"audio", "video"}:
            raise ValueError(f"modalities must be a non-empty subset of ('audio', 'video'), not {modalities}")
        self.branches = nn.ModuleDict()
        if "video" in self.modalities:
            self.branches["video"] = ONNBranch(in_channels=self.spec.channels, widths=widths, q=q)
        if "audio" in self.modalities:
            self.branches["audio"] = ONNBranch(in_channels=1, widths=widths, q=q)
        self.embedding_dims = {m: b.out_dim for m, b in self.branches.items()}
        self.fusion = ConcatFusion(dims=self.embedding_dims, hidden=fused_dim, dropout=dropout)
        self.head = nn.Linear(fused_dim, self.num_classes)

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        emb: dict[str, torch.Tensor] = {}
        if audio is not None and "audio" in self.branches:
            emb["audio"] = self.branches["audio"](audio.unsqueeze(1))
        if video is not None and "video" in self.branches:
            if video.dim() == 4:
                video = video.unsqueeze(1)
            b, k = video.shape[:2]
            emb["video"] = self.branches["video"](video.flatten(0, 1)).view(b, k, -1).mean(1)
        z = self.fusion(emb)
        return self.output(self.head(z), z, embeddings=emb)


@register_model("akturk2024_onn", kind="system", modalities=("audio", "video"),
                tiny={"widths": (4, 8), "q": 3, "fused_dim": 16, "dropout": 0.0, **TINY_SPEC, "video_frames": 1})
def akturk2024_onn(**kwargs: Any) -> OperationalTwoBranch:
    """Two-branch Self-ONN over a key frame and a mel spectrogram (Aktürk & Keçeli 2024)."""
    return OperationalTwoBranch(**kwargs)


@register_model("akturk2024_onn_face", kind="system", modalities=("video",),
                tiny={"widths": (4, 8), "q": 3, "fused_dim": 16, "dropout": 0.0, **TINY_SPEC, "video_frames": 1})
def akturk2024_onn_face(**kwargs: Any) -> OperationalTwoBranch:
    """The same network with the key-frame branch only."""
    return OperationalTwoBranch(modalities=("video",), **kwargs)


@register_model("akturk2024_onn_voice", kind="system", modalities=("audio",),
                tiny={"widths": (4, 8), "q": 3, "fused_dim": 16, "dropout": 0.0, **TINY_SPEC, "video_frames": 1})
def akturk2024_onn_voice(**kwargs: Any) -> OperationalTwoBranch:
    """The same network with the mel-spectrogram branch only."""
    return OperationalTwoBranch(modalities=("audio",), **kwargs)
