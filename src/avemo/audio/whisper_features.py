"""Whisper encoder features of whole clips, computed once and kept in the feature cache.

One encoder pass per clip (and per channel condition) yields every layer asked for; each is stored as
float16 frames ``(T, 512)`` at 50 Hz under ``layer_<k>`` (``layer_final`` for the last layer after the
final layer norm), with ``energy_db`` ``(T,)``, the RMS level of each 20 ms frame in dB re full scale
(for pooling over speech frames only). Clips longer than 30 s are encoded in 30 s chunks.

A *condition* changes the audio before the encoder, as another microphone, room or line would:
``"clean"``, ``"noise10"`` / ``"noise20"`` (white noise at that SNR), ``"telephone"`` (300-3400 Hz),
``"aug"``: one random draw of the training augmentation (:func:`augment`), or ``"pitch"``: the clip's pitch
moved 1-4 semitones (:func:`shift_pitch`, another speaker's register), each seeded by the clip's path; or
``"int8"``: the clean audio through the int8-quantized encoder graph (the caller passes that encoder).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from avemo.audio.whisper import MAX_FRAMES, MODEL_SHA256, SAMPLE_RATE, SAMPLES_PER_FRAME
from avemo.cache import FeatureCache

ALL_LAYERS: tuple = (0, 1, 2, 3, 4, 5, 6, "final")
NAMESPACE = "whisper-base-frames"


def frame_energy_db(wave: np.ndarray, n: int) -> np.ndarray:
    """RMS level (dB re full scale, floor -100) of each 20 ms frame, ``n`` frames (zero-padded)."""
    x = np.asarray(wave, dtype=np.float32)
    x = np.pad(x, (0, max(0, n * SAMPLES_PER_FRAME - x.size)))[: n * SAMPLES_PER_FRAME]
    rms = np.sqrt(np.mean(x.reshape(n, SAMPLES_PER_FRAME).astype(np.float64) ** 2, axis=1))
    return (20 * np.log10(np.maximum(rms, 1e-5))).astype(np.float32)


def _seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def augment(wave: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One random channel/room change of a 16 kHz wave, and what it was.

    Drawn independently: gain -20..+6 dB (p 0.5), reverberation (exponential-decay noise impulse
    response, RT60 0.2-0.8 s, p 0.3), a band limit (telephone 300-3400 Hz, or a low-pass at 4 kHz,
    p 0.3), a codec (MP3 24-64 kbit/s or Opus 12-32 kbit/s, p 0.2), additive noise (white or pink,
    SNR 5-30 dB, p 0.5).
    """
    from scipy.signal import butter, fftconvolve, sosfiltfilt

    from avemo.robustness.corruptions import add_noise, change_gain, codec_round_trip, telephone_band

    x = np.asarray(wave, dtype=np.float32)
    done = []
    if rng.random() < 0.3:
        rt60 = rng.uniform(0.2, 0.8)
        n = int(rt60 * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
        ir[0] = 1.0
        ir /= np.sqrt(np.sum(ir**2))
        peak = np.abs(x).max() or 1.0
        y = fftconvolve(x, ir)[: x.size]
        x = (y * peak / (np.abs(y).max() or 1.0)).astype(np.float32)
        done.append(f"reverb{rt60:.2f}")
    if rng.random() < 0.3:
        if rng.random() < 0.5:
            x = telephone_band(x, SAMPLE_RATE)
            done.append("telephone")
        else:
            sos = butter(6, 4000, btype="lowpass", fs=SAMPLE_RATE, output="sos")
            x = sosfiltfilt(sos, x.astype(np.float64)).astype(np.float32)
            done.append("lowpass4k")
    if rng.random() < 0.2:
        if rng.random() < 0.5:
            kbps = int(rng.choice([24, 32, 48, 64]))
            x = codec_round_trip(x, SAMPLE_RATE, "libmp3lame", kbps * 1000)
            done.append(f"mp3_{kbps}")
        else:
            kbps = int(rng.choice([12, 16, 24, 32]))
            x = codec_round_trip(x, SAMPLE_RATE, "libopus", kbps * 1000)
            done.append(f"opus_{kbps}")
    if rng.random() < 0.5:
        snr = rng.uniform(5, 30)
        if rng.random() < 0.5:
            x = add_noise(x, snr, seed=int(rng.integers(1 << 31)))
            done.append(f"white{snr:.0f}")
        else:
            white = np.fft.rfft(rng.standard_normal(x.size))
            f = np.maximum(np.fft.rfftfreq(x.size), 1.0 / x.size)
            pink = np.fft.irfft(white / np.sqrt(f), n=x.size).astype(np.float32)
            x = add_noise(x, snr, noise=pink)
            done.append(f"pink{snr:.0f}")
    if rng.random() < 0.5:
        db = rng.uniform(-20, 6)
        x = change_gain(x, db)
        done.append(f"gain{db:+.0f}")
    return x.astype(np.float32), "+".join(done) or "none"


def shift_pitch(wave: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """The wave with its pitch moved 1-4 semitones up or down (tempo kept; librosa's phase vocoder and
    resampling), at the original peak level: another speaker's register for the same delivery."""
    import librosa

    x = np.asarray(wave, dtype=np.float32)
    steps = float(rng.uniform(1.0, 4.0) * rng.choice([-1.0, 1.0]))
    y = librosa.effects.pitch_shift(x, sr=SAMPLE_RATE, n_steps=steps, res_type="soxr_mq")
    y *= (np.abs(x).max() or 1.0) / (np.abs(y).max() or 1.0)
    return y.astype(np.float32), f"pitch{steps:+.1f}"


def condition_fn(condition: str, key: str) -> Callable[[np.ndarray], np.ndarray]:
    """The wave transform of a named condition (``key``, e.g. the clip path, seeds the random ones)."""
    from avemo.robustness.corruptions import add_noise, telephone_band

    if condition in ("clean", "int8"):  # int8: the clean audio, encoded by the int8-quantized graph
        return lambda x: x
    if condition in ("noise10", "noise20"):
        return lambda x: add_noise(x, float(condition[5:]), seed=1)
    if condition == "telephone":
        return lambda x: telephone_band(x, SAMPLE_RATE)
    if condition.startswith("aug"):
        return lambda x: augment(x, np.random.default_rng(_seed_of(f"{condition}:{key}")))[0]
    if condition.startswith("pitch"):
        return lambda x: shift_pitch(x, np.random.default_rng(_seed_of(f"{condition}:{key}")))[0]
    raise ValueError(f"unknown condition {condition!r}")


def encode_wave_layers(encoder, wave: np.ndarray, layers: Sequence = ALL_LAYERS
                       ) -> dict[str, np.ndarray]:
    """Every asked layer's frames of a wave of any length (30 s chunks), float16, plus ``energy_db``.
    ``encoder``: a :class:`~avemo.audio.whisper.NumpyWhisperEncoder` or an
    :class:`~avemo.audio.whisper.OnnxWhisperEncoder` built with ``every_layer=True`` (the same within 1e-5)."""
    chunk = MAX_FRAMES * SAMPLES_PER_FRAME
    pieces: dict = {k: [] for k in layers}
    for a in range(0, max(1, len(wave)), chunk):
        out = encoder.encode_layers(wave[a:a + chunk], tuple(layers))
        for k in layers:
            pieces[k].append(out[k])
    res = {f"layer_{k}": np.concatenate(v).astype(np.float16) for k, v in pieces.items()}
    res["energy_db"] = frame_energy_db(wave, next(iter(res.values())).shape[0])
    return res


def clip_features(path: str | Path, encoder, *, condition: str = "clean",
                  layers: Sequence = ALL_LAYERS, cache: FeatureCache | None = None) -> dict[str, np.ndarray]:
    """The cached Whisper frames of one clip under ``condition`` (see the module docstring)."""
    from avemo.media import read_audio

    cache = cache or FeatureCache()
    settings = {"model": MODEL_SHA256[:16], "layers": [str(k) for k in layers], "condition": condition,
                "dtype": "float16", "energy": 1}

    def compute() -> dict[str, np.ndarray]:
        wave = condition_fn(condition, Path(path).name)(read_audio(path, sample_rate=SAMPLE_RATE))
        return encode_wave_layers(encoder, wave, layers)

    return cache.get_or_compute(path, NAMESPACE, settings, compute)
