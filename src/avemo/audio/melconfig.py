"""The log-mel front end's settings (:class:`MelConfig`) and filterbank, without torch: bundles and the
analyzer read them; :mod:`avemo.audio.mel` computes log-mels with them (torch, exportable to ONNX)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MelConfig:
    """Every parameter of the log-mel front end, in one place (stored in model bundles via ``to_dict``).

    Defaults: 16 kHz, 25 ms Hann window (400 samples) in a 512-point FFT, 10 ms hop (160 samples),
    64 Slaney-normalised mel bands (librosa's default filterbank) from 50 Hz to 8 kHz, power
    spectrum, natural log of ``mel + log_offset``. ``pad_mode`` is how the signal is padded at both
    ends (``center=True``): ``"constant"`` (zeros, librosa's default) or ``"reflect"``.
    """

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8000.0
    power: float = 2.0
    log_offset: float = 1e-6
    pad_mode: str = "constant"

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} is longer than n_fft {self.n_fft}")
        if self.hop_length <= 0 or self.n_mels <= 0 or self.sample_rate <= 0:
            raise ValueError("sample_rate, hop_length and n_mels must be positive")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got {self.f_min}, {self.f_max}")
        if self.pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', not {self.pad_mode!r}")
        if self.power not in (1.0, 2.0):
            raise ValueError(f"power must be 1.0 (magnitude) or 2.0 (power), not {self.power}")
        if self.log_offset <= 0:
            raise ValueError("log_offset must be positive")

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` samples (``center=True``)."""
        return 1 + n_samples // self.hop_length

    @property
    def frame_rate(self) -> float:
        """Frames per second."""
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown MelConfig fields: {sorted(unknown)}")
        return cls(**d)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """The (n_mels, n_fft // 2 + 1) float32 filterbank, from ``librosa.filters.mel`` (Slaney)."""
    import librosa

    fb = librosa.filters.mel(
        sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max
    )
    return fb.astype(np.float32)
