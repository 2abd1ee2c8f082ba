"""The Whisper-base voice model as a torch module: what ``voice.multi6`` runs, differentiable (training, attacks).

Dataflow (the same computation as :class:`avemo.audio.whisper_voice.WhisperVoiceModel`, which analysis runs
without torch; tested equal on real speech)::

    16 kHz wave (B, n) ──► zero-padded to whole 20 ms frames ──► Whisper log-mel (80 mels, log10, clamp to the
        item's max - 8, (x + 4) / 4) ──► conv 3 (80->512) GELU ──► conv 3 stride 2 GELU ──► + positions
        ──► transformer blocks 1..top, their outputs at the head's layers ──► per layer: mean and std over frames
        ──► standardised (training statistics) ──► linear ──► logits / temperature

The encoder's weights are Whisper base's (MIT), read from the hash-checked CTranslate2 ``model.bin``
(:mod:`avemo.audio.whisper`); the head's are the bundle's. A whole input is one window (one chunk).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from avemo.audio.whisper import HOP, N_FFT, SAMPLES_PER_FRAME, mel_filters, model_dir, read_ct2_weights


class WhisperLogMel(nn.Module):
    """Whisper's log-mel front end, batched: ``(B, n)`` waves (n a multiple of 320) -> ``(B, 80, n / 160)``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)
        self.register_buffer("filters", torch.from_numpy(np.asarray(mel_filters(), dtype=np.float32)),
                             persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        n_frames = wave.shape[-1] // HOP
        spec = torch.stft(wave, N_FFT, HOP, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)[..., :n_frames]
        logs = torch.log10(torch.clamp(self.filters @ spec.abs().square(), min=1e-10))
        logs = torch.maximum(logs, logs.amax(dim=(-2, -1), keepdim=True) - 8.0)
        return (logs + 4.0) / 4.0


class _Block(nn.Module):
    def __init__(self, w: Mapping[str, np.ndarray], prefix: str, heads: int = 8) -> None:
        super().__init__()

        def p(name: str) -> nn.Parameter:
            return nn.Parameter(torch.from_numpy(np.ascontiguousarray(w[prefix + name], dtype=np.float32)))

        self.heads = heads
        self.ln1 = (p("self_attention/layer_norm/gamma"), p("self_attention/layer_norm/beta"))
        self.qkv = (p("self_attention/linear_0/weight"), p("self_attention/linear_0/bias"))
        self.out = (p("self_attention/linear_1/weight"), p("self_attention/linear_1/bias"))
        self.ln2 = (p("ffn/layer_norm/gamma"), p("ffn/layer_norm/beta"))
        self.fc1 = (p("ffn/linear_0/weight"), p("ffn/linear_0/bias"))
        self.fc2 = (p("ffn/linear_1/weight"), p("ffn/linear_1/bias"))
        for i, par in enumerate((*self.ln1, *self.qkv, *self.out, *self.ln2, *self.fc1, *self.fc2)):
            self.register_parameter(f"p{i}", par)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = F.layer_norm(x, (d,), *self.ln1)
        q, k, v = F.linear(h, *self.qkv).split(d, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + F.linear(att, *self.out)
        return x + F.linear(F.gelu(F.linear(F.layer_norm(x, (d,), *self.ln2), *self.fc1)), *self.fc2)


class WhisperVoiceNet(nn.Module):
    """Waves ``(B, n)`` at 16 kHz -> logits over the head's labels, divided by its temperature (see the module
    docstring). ``head``: the bundle's arrays (``mean``, ``std``, ``weight``, ``bias``) for a linear head."""

    def __init__(self, *, layers: Sequence[int], head: Mapping[str, np.ndarray], temperature: float = 1.0,
                 encoder: Mapping[str, np.ndarray] | None = None) -> None:
        super().__init__()
        w = encoder if encoder is not None else read_ct2_weights(model_dir() / "model.bin")
        self.layers = tuple(int(k) for k in layers)
        self.front = WhisperLogMel()
        self.conv1 = nn.Conv1d(80, 512, 3, padding=1)
        self.conv2 = nn.Conv1d(512, 512, 3, stride=2, padding=1)
        with torch.no_grad():
            for conv, name in ((self.conv1, "conv1"), (self.conv2, "conv2")):
                conv.weight.copy_(torch.from_numpy(np.asarray(w[f"{name}/weight"], dtype=np.float32)))
                conv.bias.copy_(torch.from_numpy(np.asarray(w[f"{name}/bias"], dtype=np.float32)))
        self.register_buffer("positions", torch.from_numpy(np.asarray(w["position_encodings/encodings"],
                                                                      dtype=np.float32)))
        self.blocks = nn.ModuleList(_Block(w, f"layer_{i}/") for i in range(max(self.layers)))
        for name in ("mean", "std", "weight", "bias"):
            self.register_buffer(f"head_{name}", torch.from_numpy(np.asarray(head[name], dtype=np.float32)))
        self.temperature = float(temperature)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave[None]
        pad = (-wave.shape[-1]) % SAMPLES_PER_FRAME
        x = F.pad(wave.float(), (0, pad)) if pad else wave.float()
        x = F.gelu(self.conv2(F.gelu(self.conv1(self.front(x))))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        pooled = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in self.layers:
                pooled += [x.mean(1), x.std(1, unbiased=False)]
        z = (torch.cat(pooled, dim=1) - self.head_mean) / self.head_std
        return F.linear(z, self.head_weight, self.head_bias) / self.temperature
