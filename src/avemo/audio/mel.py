"""Log-mel spectrograms: one :class:`MelConfig`, one torch module (:class:`LogMel`) that exports to ONNX.

The spectrum is computed with :func:`torch.stft` in eager mode. ``torch.stft`` does not export with
this torch's TorchScript ONNX exporter (complex outputs are refused) and the newer exporter needs
``onnxscript``, so :class:`LogMel` also carries the same STFT as a strided ``conv1d`` over fixed
windowed-DFT kernels; that path is used automatically while exporting (or on request with
``impl="conv"``) and is tested to match ``torch.stft`` numerically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from avemo.audio.melconfig import MelConfig, mel_filterbank

__all__ = ["LogMel", "MelConfig", "export_onnx", "log_mel", "mel_filterbank"]

StftImpl = Literal["auto", "torch", "conv"]


def _padded_window(cfg: MelConfig) -> torch.Tensor:
    """Periodic Hann of ``win_length`` centred in ``n_fft`` zeros (as torch.stft and librosa do)."""
    win = torch.hann_window(cfg.win_length, periodic=True, dtype=torch.float64)
    left = (cfg.n_fft - cfg.win_length) // 2
    return F.pad(win, (left, cfg.n_fft - cfg.win_length - left))


def _dft_kernels(cfg: MelConfig) -> torch.Tensor:
    """(2 * n_freqs, 1, n_fft) conv1d weights: windowed cosines then windowed (negated) sines."""
    n = torch.arange(cfg.n_fft, dtype=torch.float64)
    k = torch.arange(cfg.n_freqs, dtype=torch.float64)
    ang = 2.0 * torch.pi * torch.outer(k, n) / cfg.n_fft
    win = _padded_window(cfg)
    kern = torch.cat([torch.cos(ang) * win, -torch.sin(ang) * win], dim=0)
    return kern.unsqueeze(1).to(torch.float32)


class LogMel(torch.nn.Module):
    """Waveform ``(B, T)`` float32 -> log-mel ``(B, n_mels, frames)``; an unbatched ``(T,)`` gives
    ``(n_mels, frames)``. ``frames = 1 + T // hop_length``.

    ``impl``: ``"torch"`` (torch.stft), ``"conv"`` (conv1d with DFT kernels, exportable) or
    ``"auto"`` (torch.stft, switching to conv1d while an ONNX export is tracing).
    """

    def __init__(self, cfg: MelConfig | None = None, *, impl: StftImpl = "auto") -> None:
        super().__init__()
        self.cfg = cfg or MelConfig()
        if impl not in ("auto", "torch", "conv"):
            raise ValueError(f"impl must be 'auto', 'torch' or 'conv', not {impl!r}")
        self.impl = impl
        # buffers are derived from cfg, never learned: keep them out of state_dict
        self.register_buffer(
            "window", torch.hann_window(self.cfg.win_length, periodic=True), persistent=False
        )
        self.register_buffer("mel_fb", torch.from_numpy(mel_filterbank(self.cfg)), persistent=False)
        self.register_buffer("dft_kernels", _dft_kernels(self.cfg), persistent=False)

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}, cfg={self.cfg}"

    def _use_conv(self) -> bool:
        if self.impl == "conv":
            return True
        if self.impl == "torch":
            return False
        return bool(torch.onnx.is_in_onnx_export())

    def _power_torch(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        spec = torch.stft(
            x,
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window,
            center=True,
            pad_mode=c.pad_mode,
            onesided=True,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        return power if c.power == 2.0 else power.sqrt()

    def _power_conv(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        pad = c.n_fft // 2
        xp = F.pad(x.unsqueeze(1), (pad, pad), mode=c.pad_mode)
        out = F.conv1d(xp, self.dft_kernels, stride=c.hop_length)  # (B, 2F, frames)
        re, im = out[:, : c.n_freqs], out[:, c.n_freqs :]
        power = re * re + im * im
        return power if c.power == 2.0 else power.sqrt()

    def spectrum(self, wave: torch.Tensor) -> torch.Tensor:
        """The linear (power or magnitude) spectrum ``(B, n_fft // 2 + 1, frames)``."""
        squeeze = wave.dim() == 1
        x = wave.unsqueeze(0) if squeeze else wave
        if x.dim() != 2:
            raise ValueError(f"expected a waveform (T,) or (B, T), got shape {tuple(wave.shape)}")
        x = x.to(self.window.dtype)
        p = self._power_conv(x) if self._use_conv() else self._power_torch(x)
        return p.squeeze(0) if squeeze else p

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        p = self.spectrum(wave)
        mel = torch.matmul(self.mel_fb, p)
        return torch.log(mel + self.cfg.log_offset)


def log_mel(wave: np.ndarray, cfg: MelConfig | None = None) -> np.ndarray:
    """Convenience: a mono float waveform at ``cfg.sample_rate`` -> float32 ``(n_mels, frames)``."""
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"log_mel expects a mono waveform (T,), got shape {wave.shape}")
    module = _cached_module(cfg or MelConfig())
    with torch.inference_mode():
        return module(torch.from_numpy(np.ascontiguousarray(wave))).numpy()


_MODULES: dict[MelConfig, LogMel] = {}


def _cached_module(cfg: MelConfig) -> LogMel:
    m = _MODULES.get(cfg)
    if m is None:
        m = _MODULES[cfg] = LogMel(cfg, impl="torch").eval()
    return m


def export_onnx(cfg: MelConfig | None, path: str | Path, *, opset: int = 17) -> Path:
    """Export a standalone :class:`LogMel` to ONNX: input ``wave`` (B, T) float32, output ``logmel``
    (B, n_mels, frames), batch and length dynamic."""
    import warnings

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = LogMel(cfg or MelConfig(), impl="conv").eval()
    example = torch.zeros(1, (cfg or MelConfig()).sample_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and constant-folding chatter
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["wave"],
            output_names=["logmel"],
            dynamic_axes={"wave": {0: "batch", 1: "samples"}, "logmel": {0: "batch", 2: "frames"}},
            opset_version=opset,
            dynamo=False,
        )
    return path
