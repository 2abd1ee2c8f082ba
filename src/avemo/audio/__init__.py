"""Audio front end: log-mel features, voice activity, noise reduction, windows and levels.

- :class:`MelConfig` (every feature parameter, stored in bundles), :class:`LogMel` (torch module,
  exports to ONNX), :func:`log_mel` (numpy convenience), :func:`export_onnx`.
- :class:`VoiceActivityDetector` (Silero VAD through onnxruntime) -> :class:`SpeechSegment`;
  :func:`speech_fraction` for a window.
- :func:`denoise` (spectral gating), :func:`normalize_amplitude` (peak or RMS), :func:`resample`.
- :func:`make_windows` -> :class:`Window`; :func:`frame_windows` cuts them out of a waveform.

Submodules load on first use, so ``import avemo.audio`` does not import torch or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MelConfig": "melconfig",
    "LogMel": "mel",
    "log_mel": "mel",
    "mel_filterbank": "melconfig",
    "export_onnx": "mel",
    "VoiceActivityDetector": "vad",
    "SpeechSegment": "vad",
    "speech_fraction": "vad",
    "segments_from_probs": "vad",
    "denoise": "noise",
    "normalize_amplitude": "dsp",
    "resample": "dsp",
    "Window": "windows",
    "make_windows": "windows",
    "frame_windows": "windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'avemo.audio' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"avemo.audio.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
