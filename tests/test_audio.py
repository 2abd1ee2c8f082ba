"""avemo.audio: log-mel (vs librosa, batch, conv path, ONNX), Silero VAD on real speech, noise
reduction, windows and levels."""

from __future__ import annotations

import warnings
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

from avemo.audio import (
    LogMel,
    MelConfig,
    SpeechSegment,
    VoiceActivityDetector,
    Window,
    denoise,
    export_onnx,
    frame_windows,
    log_mel,
    make_windows,
    normalize_amplitude,
    resample,
    speech_fraction,
)
from avemo.errors import AvemoError
from avemo.media import read_audio

SR = 16000


def _read16k(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz: the 48 kHz originals are resampled and stereo mixed down by avemo.media."""
    return read_audio(path, sample_rate=SR)


def _speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A deterministic signal with structure at many frequencies (harmonics + noise + envelope)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 30))
    y = 0.2 * y * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def vad() -> VoiceActivityDetector:
    return VoiceActivityDetector()


@pytest.fixture(scope="module")
def speech_flacs(data: Path) -> list[Path]:
    """One take each from three different actors (two male, one female)."""
    root = data / "ravdess-speech-16k"
    files = [
        root / "Actor_01" / "03-01-05-02-01-01-01.flac",
        root / "Actor_08" / "03-01-03-01-02-02-08.flac",
        root / "Actor_15" / "03-01-01-01-01-01-15.flac",
    ]
    for f in files:
        if not f.is_file():
            pytest.skip(f"{f} not found")
    return files


# ---------------------------------------------------------------- MelConfig / LogMel


def test_melconfig_round_trip_and_validation():
    cfg = MelConfig(n_mels=80, f_max=7600.0)
    d = cfg.to_dict()
    assert d["n_mels"] == 80 and d["hop_length"] == 160 and d["win_length"] == 400
    assert MelConfig.from_dict(d) == cfg
    assert hash(MelConfig.from_dict(d)) == hash(cfg)
    with pytest.raises(ValueError, match="unknown"):
        MelConfig.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError):
        MelConfig(win_length=1024)
    with pytest.raises(ValueError):
        MelConfig(f_max=9000.0)
    assert MelConfig().n_frames(16000) == 101 and MelConfig().frame_rate == 100.0


def _librosa_logmel(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    m = librosa.feature.melspectrogram(
        y=y,
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window="hann",
        center=True,
        pad_mode=cfg.pad_mode,
        power=cfg.power,
        n_mels=cfg.n_mels,
        fmin=cfg.f_min,
        fmax=cfg.f_max,
    )
    return np.log(m + cfg.log_offset)


@pytest.mark.parametrize("cfg", [MelConfig(), MelConfig(n_mels=40, pad_mode="reflect", f_min=0.0, power=1.0)])
def test_logmel_matches_librosa_synthetic(cfg):
    y = _speechlike(1.37)
    ours = log_mel(y, cfg)
    assert ours.dtype == np.float32
    assert ours.shape == (cfg.n_mels, 1 + y.size // cfg.hop_length)
    ref = _librosa_logmel(y, cfg)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert np.abs(ours - ref).mean() < 1e-4


def test_logmel_matches_librosa_on_real_speech(clips):
    y = _read16k(clips["ravdess_wav"])
    cfg = MelConfig()
    ours = log_mel(y, cfg)
    ref = _librosa_logmel(y, cfg)
    assert ours.shape == ref.shape == (64, 1 + y.size // 160)
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)
    assert ours.max() > np.log(cfg.log_offset) + 5  # real energy, not just the floor


def test_logmel_batch_equals_single_and_conv_equals_stft():
    ys = np.stack([_speechlike(1.0, seed=s) for s in range(3)])
    torch_mod = LogMel(MelConfig(), impl="torch")
    conv_mod = LogMel(MelConfig(), impl="conv")
    with torch.inference_mode():
        batch = torch_mod(torch.from_numpy(ys)).numpy()
        singles = np.stack([torch_mod(torch.from_numpy(y)).numpy() for y in ys])
        conv = conv_mod(torch.from_numpy(ys)).numpy()
    assert batch.shape == (3, 64, 101)
    assert singles.shape == (3, 64, 101)  # an unbatched (T,) gives (n_mels, frames)
    np.testing.assert_allclose(batch, singles, atol=1e-5, rtol=0)
    np.testing.assert_allclose(conv, batch, atol=1e-4, rtol=0)
    assert np.abs(conv - batch).mean() < 1e-4
    # buffers follow cfg and are not saved with a model's weights
    assert len(LogMel().state_dict()) == 0
    with pytest.raises(ValueError):
        torch_mod(torch.zeros(1, 1, 100))


def test_logmel_exports_to_onnx(tmp_path):
    import onnxruntime as ort

    path = export_onnx(MelConfig(), tmp_path / "logmel.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mod = LogMel(MelConfig(), impl="torch")
    for batch, seconds in ((1, 1.0), (3, 2.345)):  # dynamic batch and length
        x = np.stack([_speechlike(seconds, seed=s) for s in range(batch)])
        got = sess.run(None, {"wave": x})[0]
        with torch.inference_mode():
            want = mod(torch.from_numpy(x)).numpy()
        assert got.shape == want.shape == (batch, 64, 1 + x.shape[1] // 160)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
        assert np.abs(got - want).mean() < 1e-4


def test_logmel_inside_a_model_exports_through_the_conv_path(tmp_path):
    """impl='auto' switches to the exportable STFT while tracing, so models embedding LogMel export."""
    import onnxruntime as ort

    model = torch.nn.Sequential(LogMel(), torch.nn.Flatten(1), torch.nn.LazyLinear(4)).eval()
    x = torch.from_numpy(np.stack([_speechlike(1.0, seed=s) for s in range(2)]))
    with torch.inference_mode():
        want = model(x).numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(tmp_path / "m.onnx"), input_names=["wave"], opset_version=17, dynamo=False
        )
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"wave": x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------- VAD


def _check_speech(segs: list[SpeechSegment], duration: float) -> None:
    assert segs, "no speech found"
    for s in segs:
        assert 0.0 <= s.start < s.end <= duration + 1e-6
    for a, b in zip(segs, segs[1:], strict=False):
        assert a.end <= b.start
    # RAVDESS takes open with about a second of silence before the statement
    assert 0.3 <= segs[0].start <= 1.6, segs
    assert speech_fraction(segs, 0.0, duration) > 0.2


@pytest.mark.parametrize("name", ["ravdess_wav", "ravdess_stereo_wav"])
def test_vad_finds_speech_in_shared_ravdess_wavs(vad, clips, name):
    y = _read16k(clips[name])
    duration = y.size / SR
    probs = vad.probabilities(y)
    assert probs.shape == (-(-y.size // 512),) and probs.dtype == np.float32
    assert probs.max() > 0.9 and probs[:5].max() < 0.5  # leading silence, then speech
    _check_speech(vad.segments(y), duration)


def test_vad_finds_speech_in_ravdess_flacs_of_three_actors(vad, speech_flacs):
    for f in speech_flacs:
        y = _read16k(f)
        _check_speech(vad.segments(y, sr=SR), y.size / SR)


def test_vad_resamples_other_rates(vad, clips):
    sr = 48000
    y48 = read_audio(clips["ravdess_wav"], sample_rate=sr)
    segs = vad.segments(y48, sr=sr)
    _check_speech(segs, y48.size / sr)
    ref = vad.segments(resample(y48, sr, SR))
    assert len(segs) == len(ref) and abs(segs[0].start - ref[0].start) < 1e-6


def test_vad_matches_silero_reference_wrapper(vad, speech_flacs):
    """Same probabilities as silero-vad's own OnnxWrapper (state and context protocol)."""
    silero_utils = pytest.importorskip("silero_vad.utils_vad")
    from avemo.audio.vad import default_model_path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_model = silero_utils.OnnxWrapper(str(default_model_path()), force_onnx_cpu=True)
    y = _read16k(speech_flacs[0])
    ref = []
    for i in range(0, y.size, 512):
        chunk = torch.nn.functional.pad(
            torch.from_numpy(y[i : i + 512]), (0, max(0, 512 - y[i : i + 512].size))
        )
        ref.append(ref_model(chunk, SR).item())
    np.testing.assert_allclose(vad.probabilities(y), np.array(ref, dtype=np.float32), atol=1e-5)
    ref_model.reset_states()
    ref_ts = silero_utils.get_speech_timestamps(torch.from_numpy(y), ref_model, sampling_rate=SR)
    ours = vad.segments(y)
    assert [(round(s.start * SR), round(s.end * SR)) for s in ours] == [
        (t["start"], t["end"]) for t in ref_ts
    ]


def test_vad_finds_no_speech_in_noise_or_silence(vad):
    rng = np.random.default_rng(0)
    noise = (0.005 * rng.standard_normal(2 * SR)).astype(np.float32)
    silence = np.zeros(2 * SR, dtype=np.float32)
    for y in (noise, silence):
        segs = vad.segments(y)
        assert speech_fraction(segs, 0.0, 2.0) < 0.1
        assert np.mean(vad.probabilities(y) > 0.5) < 0.1
    assert vad.probabilities(np.zeros(0, dtype=np.float32)).shape == (0,)
    assert vad.segments(np.zeros(100, dtype=np.float32)) == []


def test_vad_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(AvemoError, match="not found"):
        VoiceActivityDetector(tmp_path / "nope.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(AvemoError, match="cannot load"):
        VoiceActivityDetector(bad)


def test_vad_refuses_multichannel(vad):
    with pytest.raises(ValueError, match="mono"):
        vad.probabilities(np.zeros((2, 16000), dtype=np.float32))


def test_speech_fraction():
    segs = [SpeechSegment(1.0, 2.0), SpeechSegment(1.5, 2.5), SpeechSegment(4.0, 5.0)]
    assert speech_fraction(segs, 0.0, 1.0) == 0.0
    assert speech_fraction(segs, 1.0, 3.0) == pytest.approx(0.75)  # overlap counted once
    assert speech_fraction(segs, 0.0, 5.0) == pytest.approx(0.5)
    assert speech_fraction(segs, 4.2, 4.8) == pytest.approx(1.0)
    assert speech_fraction([], 0.0, 3.0) == 0.0
    assert speech_fraction(segs, 2.0, 2.0) == 0.0


# ---------------------------------------------------------------- denoise, levels, resampling


def _split_noise(out: np.ndarray, clean: np.ndarray) -> tuple[float, float]:
    """(gain of the clean signal in ``out``, energy of what is left: the noise)."""
    c = clean.astype(np.float64)
    gain = float(out @ c / (c @ c))
    return gain, float(np.mean((out - gain * c) ** 2))


def test_denoise_keeps_length_and_reduces_noise_on_a_noisy_sine():
    rng = np.random.default_rng(1)
    t = np.arange(2 * SR) / SR
    clean = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    noisy = clean + (0.05 * rng.standard_normal(t.size)).astype(np.float32)
    noise_only = (0.05 * rng.standard_normal(SR)).astype(np.float32)
    out = denoise(noisy, SR, stationary=True, noise_clip=noise_only)
    assert out.shape == noisy.shape and out.dtype == np.float32
    _, noise_before = _split_noise(noisy, clean)
    gain, noise_after = _split_noise(out, clean)
    assert noise_after < 0.2 * noise_before, (noise_before, noise_after)
    assert gain > 0.6 and np.corrcoef(out, clean)[0, 1] > 0.99  # the tone survives
    with pytest.raises(ValueError):
        denoise(noisy, SR, prop_decrease=1.5)
    assert denoise(np.zeros(0, dtype=np.float32)).shape == (0,)


def test_denoise_improves_noisy_real_speech(speech_flacs):
    y = _read16k(speech_flacs[1])
    rng = np.random.default_rng(2)
    noise = rng.standard_normal(y.size).astype(np.float32)
    noise *= np.sqrt(np.mean(y**2) / np.mean(noise**2))  # 0 dB SNR
    noisy = y + noise
    for stationary in (True, False):
        out = denoise(noisy, SR, stationary=stationary)
        assert out.shape == y.shape
        gain_in, noise_in = _split_noise(noisy, y)
        gain_out, noise_out = _split_noise(out, y)
        snr_in = 10 * np.log10(gain_in**2 * np.mean(y**2) / noise_in)
        snr_out = 10 * np.log10(gain_out**2 * np.mean(y**2) / noise_out)
        assert snr_out > snr_in + 3.0, (stationary, snr_in, snr_out)


def test_normalize_amplitude():
    y = (0.01 * np.sin(np.linspace(0, 100, 8000))).astype(np.float32)
    p = normalize_amplitude(y, "peak")
    assert np.max(np.abs(p)) == pytest.approx(0.95, rel=1e-5)
    r = normalize_amplitude(y, "rms", target=0.05)
    assert np.sqrt(np.mean(r.astype(np.float64) ** 2)) == pytest.approx(0.05, rel=1e-4)
    loud = normalize_amplitude(y, "rms", target=0.9)  # would clip: limited to a peak of 1
    assert np.max(np.abs(loud)) == pytest.approx(1.0, rel=1e-5)
    z = np.zeros(100, dtype=np.float32)
    assert np.array_equal(normalize_amplitude(z, "rms"), z)
    # two gains of the same signal look alike after normalisation
    np.testing.assert_allclose(normalize_amplitude(3 * y, "rms"), normalize_amplitude(y, "rms"), atol=1e-6)
    with pytest.raises(ValueError):
        normalize_amplitude(y, "loudness")  # type: ignore[arg-type]


def test_resample_lengths():
    y = np.zeros(48000, dtype=np.float32)
    assert resample(y, 48000, 16000).shape == (16000,)
    assert resample(y, 44100, 16000).shape == (int(np.ceil(48000 * 16000 / 44100)),)
    assert resample(y, 16000, 16000) is not None
    with pytest.raises(ValueError):
        resample(np.zeros(10, dtype=np.int16), 16000, 8000)


# ---------------------------------------------------------------- windows


def _assert_covers(ws: list[Window], duration: float) -> None:
    assert ws[0].start == 0.0
    assert ws[-1].end == pytest.approx(duration)
    covered = 0.0
    for w in ws:
        assert 0.0 <= w.start < w.end <= duration + 1e-9
        assert w.start <= covered + 1e-9  # no gap
        covered = max(covered, w.end)
    assert covered == pytest.approx(duration)


@pytest.mark.parametrize("duration", [0.4, 2.9, 3.0, 3.5, 4.07, 5.0, 10.3, 61.25])
def test_make_windows_cover_the_duration(duration):
    ws = make_windows(duration, 3.0, 1.0)
    _assert_covers(ws, duration)
    assert all(w.duration <= 3.0 + 1e-9 for w in ws)
    assert [w.start for w in ws] == sorted({w.start for w in ws})


def test_make_windows_short_clip_and_tail():
    assert make_windows(1.2) == [Window(0.0, 1.2)]
    assert make_windows(5.0, 3.0, 1.0) == [Window(0.0, 3.0), Window(1.0, 4.0), Window(2.0, 5.0)]
    assert make_windows(3.5, 3.0, 1.0) == [Window(0.0, 3.0), Window(1.0, 3.5)]  # clamped
    # hop == window: a tiny tail is not dropped, it becomes a full window ending at the end
    ws = make_windows(6.2, 3.0, 3.0)
    _assert_covers(ws, 6.2)
    assert ws[-1] == Window(pytest.approx(3.2), 6.2)
    ws = make_windows(6.2, 3.0, 3.0, min_last_s=0.1)
    assert ws[-1] == Window(6.0, 6.2)
    with pytest.raises(ValueError):
        make_windows(0.0)


def test_frame_windows_pads_and_keeps_alignment():
    y = np.arange(int(3.5 * SR), dtype=np.float32) / 1e5
    ws = make_windows(y.size / SR, 3.0, 1.0)
    frames = frame_windows(y, SR, ws)
    assert frames.shape == (2, 3 * SR) and frames.dtype == np.float32
    np.testing.assert_array_equal(frames[0], y[: 3 * SR])
    tail = y[SR:]
    np.testing.assert_array_equal(frames[1, : tail.size], tail)
    assert not frames[1, tail.size :].any()  # zero-padded
    short = frame_windows(y[:8000], SR, make_windows(0.5), window_s=3.0)
    assert short.shape == (1, 3 * SR) and not short[0, 8000:].any()


def test_vad_sequence_model_equals_the_per_chunk_model(clips):
    from pathlib import Path

    from avemo.audio import VoiceActivityDetector
    from avemo.audio.vad import default_model_path
    from avemo.media import read_audio

    wave = read_audio(clips["cremad_sad"], 16000)
    fast = VoiceActivityDetector()
    assert fast._sequence is not None  # the package ships the sequence export
    chunked = VoiceActivityDetector(Path(default_model_path()))
    assert chunked._sequence is None
    assert np.allclose(fast.probabilities(wave), chunked.probabilities(wave), atol=1e-5)


def test_vad_stream_equals_the_whole_waveform(clips):
    from avemo.audio import VoiceActivityDetector
    from avemo.media import read_audio

    wave = read_audio(clips["cremad_ang"], 16000)
    vad = VoiceActivityDetector()
    stream = vad.stream()
    parts = [stream.feed(wave[i:i + 3333]) for i in range(0, wave.size, 3333)] + [stream.finish()]
    assert np.allclose(np.concatenate(parts), vad.probabilities(wave), atol=1e-6)
