"""The voice CNN and its shipped bundle (voice.ravdess8) on real RAVDESS clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import avemo
from avemo.labels import EMOTIONS
from avemo.models.encoders.audio import VoiceCNN

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results" / "voice_ravdess.json"
BUNDLE = "voice.ravdess8"


def test_voice_cnn_shapes_any_length_and_gain_invariance():
    torch.manual_seed(0)
    model = VoiceCNN(channels=(8, 16), emb_dim=16).eval()
    for frames in (120, 301):
        assert model(torch.randn(3, 64, frames)).shape == (3, 8)
    mel = torch.randn(2, 64, 200)
    with torch.no_grad():  # a louder recording only shifts the log-mel: normalisation removes it
        assert torch.allclose(model(mel), model(mel + 3.0), atol=1e-4)


def test_cross_validation_covers_all_six_folds_and_every_actor():
    if not RESULTS.is_file():
        pytest.skip("voice cross-validation not published yet")
    res = json.loads(RESULTS.read_text())
    row = res["rows"]["voice_ravdess"]
    assert len(row["folds"]) == 6 and res["n_samples"] == 1440
    actors = sorted(a for f in row["folds"] for a in f["test_speakers"])
    assert actors == [f"ravdess:{i:02d}" for i in range(1, 25)]
    assert sum(f["n"] for f in row["folds"]) == 1440
    assert row["summary"]["accuracy"]["mean"] > 0.4  # chance is 0.125


@pytest.fixture(scope="module")
def bundle():
    if BUNDLE not in avemo.list_models(pretrained=True):
        pytest.skip(f"{BUNDLE} not shipped yet")
    return avemo.load(BUNDLE)


def test_bundle_is_small_and_self_describing(bundle):
    assert bundle.kind == "voice" and bundle.labels == EMOTIONS
    size = sum(p.stat().st_size for p in bundle.path.iterdir())
    assert size < 10e6
    assert bundle.window_s == 3.0 and bundle.mel.n_mels == 64 and bundle.sample_rate == 16000
    assert "all 24 actors" in bundle.card and "CC BY-NC-SA" in bundle.card


def test_bundle_classifies_real_clips_better_than_chance(bundle, data: Path, clips: dict[str, Path]):
    """Actor 19's 60 clips through the predictor the analyzer runs (the bundle's ONNX network on 3 s wave
    windows). The shipped model saw every actor in training, so this checks the bundle's plumbing (sample rate,
    window, labels) on real audio; the actor-independent accuracy is the cross-validated one checked above."""
    from avemo.audio import Window, frame_windows
    from avemo.datasets import read_corpus
    from avemo.inference.predictors import VoicePredictor
    from avemo.media import read_audio

    voice = VoicePredictor(bundle)
    sr, win = voice.sample_rate, bundle.window_s
    samples = [s for s in read_corpus("ravdess") if s.speaker == "ravdess:19"]
    assert len(samples) == 60
    correct = 0
    for s in samples:
        wave = read_audio(s.path, sample_rate=sr)
        probs = voice.predict(frame_windows(wave, sr, [Window(0.0, wave.size / sr)], window_s=win)).mean(0)
        assert probs.shape == (8,) and np.isclose(probs.sum(), 1, atol=1e-5)
        correct += EMOTIONS[int(probs.argmax())] == s.label
    assert correct / len(samples) > 0.25
    # the original 48 kHz stereo WAV goes through the same path, and the torch module agrees with the ONNX network
    wave = read_audio(clips["ravdess_wav"], sample_rate=sr)
    windows = frame_windows(wave, sr, [Window(0.0, win), Window(1.0, 1.0 + win)], window_s=win)
    onnx = voice.network(windows)
    with torch.no_grad():
        np.testing.assert_allclose(onnx, bundle.get_model("torch")(torch.from_numpy(windows)).numpy(), atol=1e-3)
    assert onnx.shape == (2, 8) and np.isfinite(onnx).all()


def test_gain_augmentation_is_exact_in_the_log_mel_domain(clips):
    import torch

    from avemo.audio import MelConfig, log_mel
    from avemo.media import read_audio
    from avemo.training.voice import gain_augment

    x = read_audio(clips["ravdess_wav"], 16000)
    cfg = MelConfig()
    loud = torch.from_numpy(log_mel(x, cfg))[None]
    quiet = torch.from_numpy(log_mel(x * 0.1, cfg))[None]  # the same recording 20 dB quieter
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(gain_augment(loud, g, low_db=-20, high_db=-20, log_offset=cfg.log_offset), quiet, atol=1e-4)
    assert (loud - quiet).abs().max() > 1.0  # and the change is not negligible
