"""What every reviewed system shares: labels, the input description, the forward convention, the loss.

See :mod:`avemo.models.systems` for the convention itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avemo.audio.mel import MelConfig
from avemo.errors import ModelError
from avemo.labels import EMOTIONS
from avemo.losses import cross_entropy

__all__ = ["AUDIO_FPS", "TINY_SPEC", "EmotionSystem", "InputSpec", "SystemWrapper"]

#: Log-mel frames per second of the audio front end (10 ms hop, :class:`avemo.audio.mel.MelConfig`).
AUDIO_FPS = MelConfig().frame_rate
#: The input sizes of every system's tiny test settings (``ModelInfo.tiny``): small, but real shapes.
TINY_SPEC: dict[str, int] = {"n_mels": 32, "audio_frames": 96, "video_frames": 4, "face_size": 48}


@dataclass(frozen=True)
class InputSpec:
    """The inputs one example holds: ``audio`` ``(n_mels, audio_frames)`` log-mel frames at
    :data:`AUDIO_FPS`, ``video`` ``(video_frames, channels, face_size, face_size)`` face crops at
    ``video_fps``. ``seconds`` is the media one example covers (used for cost per second)."""

    n_mels: int = 64
    audio_frames: int = 300
    video_frames: int = 15
    channels: int = 1
    face_size: int = 48
    video_fps: float = 5.0

    @property
    def seconds(self) -> float:
        return self.audio_frames / AUDIO_FPS


class EmotionSystem(nn.Module):
    """Base class: ``labels``, ``modalities``, ``spec`` (:class:`InputSpec`), ``embedding_dims``
    (per-modality embedding sizes), :meth:`example_inputs`, and a default cross-entropy :meth:`loss`."""

    modalities: tuple[str, ...] = ("audio", "video")

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, label_smoothing: float = 0.0, **spec: Any) -> None:
        """``spec``: the :class:`InputSpec` fields (``n_mels``, ``audio_frames``, ...); anything else is an error."""
        super().__init__()
        unknown = set(spec) - set(InputSpec.__dataclass_fields__)
        if unknown:
            raise TypeError(f"{type(self).__name__}: unknown arguments {sorted(unknown)}")
        self.labels = tuple(labels)
        self.num_classes = len(self.labels)
        self.spec = InputSpec(**spec)
        self.label_smoothing = label_smoothing
        self.embedding_dims: dict[str, int] = {}

    def batch_size(self, **inputs: Any) -> int:
        present = [v for k, v in inputs.items() if v is not None and k in self.modalities]
        if not present:
            raise ModelError(f"{type(self).__name__} needs at least one of {', '.join(self.modalities)}")
        return len(present[0])

    def example_inputs(self, batch: int = 2, *, seconds: float | None = None) -> dict[str, torch.Tensor]:
        """Random inputs of the right shapes (for shape checks, export and timing)."""
        s = self.spec
        scale = 1.0 if seconds is None else seconds / s.seconds
        out = {}
        if "audio" in self.modalities:
            out["audio"] = torch.randn(batch, s.n_mels, max(1, round(s.audio_frames * scale)))
        if "video" in self.modalities:
            out["video"] = torch.rand(batch, max(1, round(s.video_frames * scale)), s.channels, s.face_size,
                                      s.face_size)
        return out

    @staticmethod
    def output(logits: torch.Tensor, embedding: torch.Tensor, *, embeddings: dict[str, torch.Tensor] | None = None,
               attention: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """The output dict of the forward convention."""
        return {"logits": logits, "embedding": embedding, "embeddings": embeddings or {},
                "attention": attention or {}, **extra}

    def loss(self, out: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        """Training loss for one batch: cross-entropy (with this system's label smoothing) by default;
        systems with auxiliary objectives add them here."""
        return cross_entropy(out["logits"], target, label_smoothing=self.label_smoothing)

    def decision_loss(self, out: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        """For decision-level fusion: NLL of the fused log-probabilities in ``out["logits"]`` plus a
        cross-entropy for every branch's own logits in ``out["modality_logits"]``, so each branch
        also learns to classify alone."""
        total = F.nll_loss(out["logits"], target)
        for lg in out.get("modality_logits", {}).values():
            total = total + cross_entropy(lg, target, label_smoothing=self.label_smoothing)
        return total



class SystemWrapper(nn.Module):
    """Base for modules that wrap a system (``self.system``) and keep its interface: attributes the
    wrapper lacks (``labels``, ``spec``, ``embedding_dims``, ``example_inputs`` ...) come from the system."""

    def __init__(self, system: nn.Module) -> None:
        super().__init__()
        self.system = system

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if "system" not in modules:
                raise
            return getattr(modules["system"], name)

    def forward(self, **inputs: Any) -> dict[str, Any]:
        return self.system(**inputs)

    def loss(self, out: dict[str, Any], target: torch.Tensor, **kw: Any) -> torch.Tensor:
        return self.system.loss(out, target, **kw)
