"""Hybrid CNN-RNN — model card.

**Paper.** S. Zhang, S. Zhang, T. Huang, W. Gao (2016), "Multimodal deep convolutional neural
network for audio-visual emotion recognition", *ICMR 2016*; the hybrid form here follows the
brief: a CNN learns a representation of every video frame and every spectrogram slice, and a
recurrent network models their evolution over time.

**Implemented.**
- Visual: a CNN per face frame (:class:`avemo.models.blocks.FrameCNN`), an LSTM over the frames.
- Audio: the log-mel spectrogram cut into slices of ``slice_frames`` frames (default 64, 0.64 s,
  about Zhang et al.'s 64-frame segments), a CNN per slice, an LSTM over the slices.
- The two LSTMs' final states are concatenated and classified by a fully connected fusion network.

**What differs.** Zhang et al. fine-tune ImageNet AlexNet / a C3D network and fuse with a deep
belief network over segment features averaged per utterance; here the CNNs are small and trained
from scratch, the temporal model is an LSTM (per the brief) and the fusion is an MLP, all trained
end-to-end. A missing modality is replaced by a learned placeholder at the fusion input.

**Data and licence.** Code: Apache-2.0; weights inherit their corpus's non-commercial terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.models.blocks import FrameCNN, RecurrentEncoder, SpectrogramCNN, TimeDistributed, snippets
from avemo.models.fusion.early import ConcatFusion
from avemo.models.registry import register_model
from avemo.models.systems.base import TINY_SPEC, EmotionSystem

__all__ = ["HybridCNNRNN"]


class HybridCNNRNN(EmotionSystem):
    """Per-frame / per-slice CNNs, one LSTM per modality, MLP fusion."""

    def __init__(self, *, labels: Sequence[str] = EMOTIONS, widths: Sequence[int] = (32, 64, 128),
                 hidden: int = 128, slice_frames: int = 64, bidirectional: bool = False, fused_dim: int = 128,
                 dropout: float = 0.3, label_smoothing: float = 0.0, **spec: Any) -> None:
        super().__init__(labels=labels, label_smoothing=label_smoothing, **spec)
        self.slice_frames = slice_frames
        self.frame_cnn = FrameCNN(in_channels=self.spec.channels, widths=widths)
        self.slice_cnn = TimeDistributed(SpectrogramCNN(widths=widths))
        self.video_rnn = RecurrentEncoder(input_dim=self.frame_cnn.out_dim, hidden=hidden,
                                          bidirectional=bidirectional)
        self.audio_rnn = RecurrentEncoder(input_dim=self.slice_cnn.module.out_dim, hidden=hidden,
                                          bidirectional=bidirectional)
        self.embedding_dims = {"audio": self.audio_rnn.out_dim, "video": self.video_rnn.out_dim}
        self.fusion = ConcatFusion(dims=self.embedding_dims, hidden=fused_dim, dropout=dropout)
        self.head = nn.Linear(fused_dim, self.num_classes)

    def forward(self, audio: torch.Tensor | None = None, video: torch.Tensor | None = None) -> dict[str, Any]:
        self.batch_size(audio=audio, video=video)
        emb: dict[str, torch.Tensor] = {}
        if audio is not None:
            slices = snippets(audio, count=max(1, audio.shape[-1] // self.slice_frames), dim=-1)
            emb["audio"] = self.audio_rnn(self.slice_cnn(slices))[1]
        if video is not None:
            emb["video"] = self.video_rnn(self.frame_cnn(video))[1]
        z = self.fusion(emb)
        return self.output(self.head(z), z, embeddings=emb)


@register_model("zhang2016_cnnrnn", kind="system", modalities=("audio", "video"),
                tiny={"widths": (4, 8), "hidden": 16, "slice_frames": 32, "fused_dim": 16, "dropout": 0.0, **TINY_SPEC})
def zhang2016_cnnrnn(**kwargs: Any) -> HybridCNNRNN:
    """Hybrid CNN-RNN: CNN per frame / spectrogram slice, LSTM over time (after Zhang et al. 2016)."""
    return HybridCNNRNN(**kwargs)
