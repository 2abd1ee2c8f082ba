"""Multi-task ensemble over several feature sets — model card.

**Paper.** M. Hao, W.-H. Cao, Z.-T. Liu, M. Wu, P. Xiao (2020), "Visual-audio emotion recognition
based on multi-task and ensemble learning with multiple features", *Neurocomputing* 391, 42-51.

**Implemented as described.**
- Several feature sets, each with its own classifier (ensemble member):
  ``audio_cnn`` (a CNN over the log-mel spectrogram), ``audio_stats`` (utterance statistics of the
  log-mel bands and their deltas: mean, std, min, max, through an MLP), ``face_cnn`` (a CNN over the
  face crops, averaged over frames) and ``face_stats`` (coarse 8x8 appearance statistics of the face
  track and of its frame-to-frame change, through an MLP).
- Multi-task learning: every member has an emotion head and an auxiliary head regressing
  valence and arousal (targets from :data:`avemo.labels.VALENCE_AROUSAL` of the emotion label, or
  given per sample); the loss is the members' cross-entropies plus ``aux_weight`` x their MSE.
- Ensemble: the members' class probabilities are averaged (equal weights, or given / learned).

**What differs.** Hao et al. use hand-crafted acoustic descriptors (openSMILE-style) and LBP-TOP /
CNN face features and a gender auxiliary task on their corpus; here the feature sets are computed
in torch from the log-mel and the face crops (no non-commercial openSMILE dependency) and the
auxiliary task is valence/arousal regression, which every corpus with emotion labels supports.

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avemo.labels import EMOTIONS, VALENCE_AROUSAL
from avemo.losses import multitask_loss
from avemo.models.blocks import FrameCNN, SpectrogramCNN
from avemo.models.fusion.decision import WeightedDecisionFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["MultiTaskEnsemble", "audio_statistics", "face_statistics"]

MEMBERS = {"audio_cnn": "audio", "audio_stats": "audio", "face_cnn": "video", "face_stats": "video"}


def audio_statistics(audio: torch.Tensor) -> torch.Tensor:
    """``(B, n_mels, T)`` -> ``(B, 8 n_mels)``: mean, std, min, max of the bands and of their deltas."""
    delta = audio[..., 1:] - audio[..., :-1] if audio.shape[-1] > 1 else torch.zeros_like(audio)
    feats = [f(x) for x in (audio, delta) for f in (lambda t: t.mean(-1), lambda t: t.std(-1, unbiased=False),
                                                    lambda t: t.amin(-1), lambda t: t.amax(-1))]
    return torch.cat(feats, dim=-1)


def face_statistics(video: torch.Tensor, grid: int = 8) -> torch.Tensor:
    """``(B, T, C, H, W)`` -> ``(B, 3 C grid^2)``: mean and std of the 8x8-pooled frames over time and the
    mean absolute frame-to-frame change."""
    b, t = video.shape[:2]
    small = F.adaptive_avg_pool2d(video.flatten(0, 1), grid).view(b, t, -1)
    change = (small[:, 1:] - small[:, :-1]).abs().mean(1) if t > 1 else torch.zeros_like(small[:, 0])
    return torch.cat([small.mean(1), small.std(1, unbiased=False), change], dim=-1)


class _Member(nn.Module):
    """Features -> hidden -> (emotion logits, valence/arousal)."""

    def __init__(self, *, encoder: nn.Module, in_dim: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.emotion = nn.Linear(hidden, num_classes)
        self.aux = nn.Linear(hidden, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.trunk(self.encoder(x))
        return h, self.emotion(h), torch.tanh(self.aux(h))


class _Pooled(nn.Module):
    def __init__(self, cnn: FrameCNN) -> None:
        super().__init__()
        self.cnn = cnn

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.cnn.pooled(video)


class _Fn(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class MultiTaskEnsemble(EmotionSystem):
    """Four feature-set members, each with an emotion and a valence/arousal head; probabilities averaged."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, widths: Sequence[int] = (32, 64, 128), hidden: int = 128,
                 members: Sequence[str] = tuple(MEMBERS), weights: Sequence[float] | None = None,
                 learn_weights: bool = False, aux_weight: float = 0.5, dropout: float = 0.3,
                 label_smoothing: float = 0.0, **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        unknown = set(members) - set(MEMBERS)
        if unknown:
            raise ValueError(f"unknown members {sorted(unknown)}; known: {list(MEMBERS)}")
        self.modalities = tuple(dict.fromkeys(MEMBERS[m] for m in members))
        s = self.spec
        enc: dict[str, tuple[nn.Module, int]] = {}
        if "audio_cnn" in members:
            cnn = SpectrogramCNN(widths=widths)
            enc["audio_cnn"] = (cnn, cnn.out_dim)
        if "audio_stats" in members:
            enc["audio_stats"] = (nn.Sequential(_Fn(audio_statistics), nn.LayerNorm(8 * s.n_mels)), 8 * s.n_mels)
        if "face_cnn" in members:
            fcnn = FrameCNN(in_channels=s.channels, widths=widths)
            enc["face_cnn"] = (_Pooled(fcnn), fcnn.out_dim)
        if "face_stats" in members:
            d = 3 * s.channels * 64
            enc["face_stats"] = (nn.Sequential(_Fn(face_statistics), nn.LayerNorm(d)), d)
        self.members = nn.ModuleDict({k: _Member(encoder=e, in_dim=d, hidden=hidden, num_classes=self.num_classes,
                                                 dropout=dropout) for k, (e, d) in enc.items()})
        self.ensemble = WeightedDecisionFusion(modalities=tuple(self.members), weights=weights, learn=learn_weights)
        self.aux_weight = aux_weight
        self.register_buffer("va_table", torch.tensor([VALENCE_AROUSAL[n] for n in self.labels]), persistent=False)
        self.embedding_dims = {m: hidden * sum(MEMBERS[k] == m for k in self.members) for m in self.modalities}

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        inputs = {"audio": audio, "video": video}
        hidden, logits, aux = {}, {}, {}
        for name, member in self.members.items():
            x = inputs[MEMBERS[name]]
            if x is not None:
                hidden[name], logits[name], aux[name] = member(x)
        probs = {m: (torch.softmax(logits[m], -1) if m in logits else None) for m in self.members}
        fused, w = self.ensemble(probs)
        emb = {mod: torch.cat([hidden[k] for k in hidden if MEMBERS[k] == mod], dim=-1)
               for mod in self.modalities if any(MEMBERS[k] == mod for k in hidden)}
        va = torch.stack(list(aux.values())).mean(0)
        return self.output(torch.log(fused.clamp_min(1e-8)), torch.cat(list(hidden.values()), dim=-1),
                           embeddings=emb, modality_logits=logits, aux=aux, valence_arousal=va,
                           attention={"ensemble_weights": w})

    def loss(self, out: dict[str, Any], target: torch.Tensor, aux_target: torch.Tensor | None = None) -> torch.Tensor:
        """Ensemble NLL + members' cross-entropies (:meth:`decision_loss`) + ``aux_weight`` x members'
        valence/arousal MSE (targets from the labels unless ``aux_target`` ``(B, 2)`` is given)."""
        va = self.va_table[target] if aux_target is None else aux_target
        aux = sum(F.mse_loss(p, va) for p in out["aux"].values())
        return multitask_loss({"emotion": self.decision_loss(out, target), "valence_arousal": aux},
                              {"valence_arousal": self.aux_weight})


@register_model("hao2020_ensemble", kind="system", modalities=("audio", "video"),
                tiny={"widths": (4, 8), "hidden": 16, "dropout": 0.0, **TINY_SPEC})
def hao2020_ensemble(**kwargs: Any) -> MultiTaskEnsemble:
    """Multi-task ensemble over several feature sets (Hao et al. 2020)."""
    return MultiTaskEnsemble(**kwargs)
