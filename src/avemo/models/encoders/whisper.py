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
from typing import Any

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


class _TorchHead(nn.Module):
    """One numpy head (:func:`avemo.audio.whisper_voice._head_logits`) as torch buffers: ``linear`` on each
    layer's mean and std, or ``attn`` (attentive statistics over every frame of the input)."""

    def __init__(self, kind: str, arrays: Mapping[str, np.ndarray], heads: int | None = None) -> None:
        super().__init__()
        self.kind, self.heads = kind, int(heads or 1)
        for name, value in arrays.items():
            self.register_buffer(name.replace(".", "_"), torch.from_numpy(np.asarray(value, dtype=np.float32)))

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.kind == "linear":
            z = torch.cat([v for x in xs for v in (x.mean(1), x.std(1, unbiased=False))], dim=1)
            return F.linear((z - self.mean) / self.std, self.weight, self.bias)
        h = F.gelu(F.linear((torch.cat(list(xs), dim=2) - self.mean) / self.std, self.proj_weight, self.proj_bias))
        a = F.linear(h, self.att_weight, self.att_bias).softmax(dim=1)  # (B, T, heads), over time
        b, t, d = h.shape
        hh = h.view(b, t, self.heads, d // self.heads)
        mu = torch.einsum("bth,bthd->bhd", a, hh)
        sd = (torch.einsum("bth,bthd->bhd", a, hh**2) - mu**2).clamp_min(1e-6).sqrt()
        return F.linear(torch.cat([mu.reshape(b, d), sd.reshape(b, d)], dim=-1), self.fc_weight, self.fc_bias)


class WhisperVoiceNet(nn.Module):
    """Waves ``(B, n)`` at 16 kHz -> logits over the head's labels, divided by its temperature (see the module
    docstring). ``head``: the bundle's arrays (``mean``, ``std``, ``weight``, ``bias``) for a linear head; with
    ``members`` (a ``blend`` head's settings) each member's arrays under ``<name>.`` and the blend's ``bias``:
    the mean of the members' log-softmax outputs plus that bias."""

    def __init__(self, *, layers: Sequence[int], head: Mapping[str, np.ndarray], temperature: float = 1.0,
                 encoder: Mapping[str, np.ndarray] | None = None,
                 members: Sequence[Mapping[str, Any]] | None = None) -> None:
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
        if members is None:
            members = [{"name": "", "kind": "linear", "layers": self.layers}]
            head = {f".{k}": v for k, v in head.items()}
        else:
            self.register_buffer("blend_bias", torch.from_numpy(np.asarray(head["bias"], dtype=np.float32)))
        self.blend = len(members) > 1 or members[0]["name"] != ""
        self.member_layers = [tuple(self.layers.index(int(k)) for k in m["layers"]) for m in members]
        self.members = nn.ModuleList(
            _TorchHead(m["kind"], {k[len(m["name"]) + 1:]: v for k, v in head.items() if k.startswith(f"{m['name']}.")},
                       m.get("heads")) for m in members)
        self.temperature = float(temperature)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave[None]
        pad = (-wave.shape[-1]) % SAMPLES_PER_FRAME
        x = F.pad(wave.float(), (0, pad)) if pad else wave.float()
        x = F.gelu(self.conv2(F.gelu(self.conv1(self.front(x))))).transpose(1, 2)
        x = x + self.positions[: x.shape[1]]
        outs = []
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if i in self.layers:
                outs.append(x)
        if not self.blend:
            return self.members[0](outs) / self.temperature
        z = torch.stack([m([outs[k] for k in ks]).log_softmax(-1) for m, ks in zip(self.members, self.member_layers)])
        return (z.mean(0) + self.blend_bias) / self.temperature
