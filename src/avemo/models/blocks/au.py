"""The action-unit adapter: a clip's action-unit vector standing in for a system's frame-level visual
encoder, for corpora that give clip-level facial action units instead of video (RAVDESS here)."""

from __future__ import annotations

import torch
from torch import nn

from avemo.errors import ModelError


class AUEncoder(nn.Module):
    """Stand-in for a frame-level visual encoder when the "video" is a clip's action-unit vector:
    ``(B, T, C, H, W)`` (flattened per frame to ``in_dim``) -> per-frame ``(B, T, out_dim)``; :meth:`pooled`
    averages over frames, like :class:`avemo.models.blocks.FrameCNN`."""

    def __init__(self, *, in_dim: int, out_dim: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim), nn.ReLU(inplace=True))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() == 4:
            video = video.unsqueeze(1)
        b, t = video.shape[:2]
        flat = video.reshape(b, t, -1)
        if flat.shape[-1] != self.in_dim:
            raise ModelError(f"AU adapter expects {self.in_dim} features per frame, got {flat.shape[-1]}")
        return self.mlp(flat)

    def pooled(self, video: torch.Tensor) -> torch.Tensor:
        return self(video).mean(1)


def swap_visual_encoders(model: nn.Module, in_dim: int, hidden: int = 64) -> list[str]:
    """Replace every frame-level visual encoder of ``model`` (each :class:`~avemo.models.blocks.FrameCNN`,
    and a per-frame ``face_net``) by an :class:`AUEncoder` of the same output size; returns their names."""
    from avemo.models.blocks import FrameCNN, TimeDistributed

    targets = [(name, mod) for name, mod in model.named_modules()
               if isinstance(mod, FrameCNN) or (name.split(".")[-1] == "face_net" and isinstance(mod, TimeDistributed))]
    for name, mod in targets:
        out_dim = mod.out_dim if isinstance(mod, FrameCNN) else mod.module.out_dim
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], AUEncoder(in_dim=in_dim, out_dim=out_dim, hidden=hidden))
    return [name for name, _ in targets]
