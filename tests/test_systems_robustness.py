"""Robustness helpers on the systems: modality dropout, FGSM / PGD on either modality, noise at an SNR
and face occlusion (on real RAVDESS audio and FER-2013 faces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_systems import build, inputs_for, real_batch

from avemo.robustness.adversarial import fgsm, pgd, vulnerability
from avemo.robustness.corruptions import add_noise, occlude
from avemo.robustness.missing import ModalityDropout


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Spy(torch.nn.Module):
    modalities = ("audio", "video")

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, audio=None, video=None):
        self.seen.append((audio is not None, video is not None))
        return {}


def test_modality_dropout_drops_in_training_only() -> None:
    spy = _Spy()
    wrap = ModalityDropout(spy, p_drop=1.0, seed=0)
    x = {"audio": torch.ones(2, 3), "video": torch.ones(2, 4)}
    for _ in range(20):
        wrap(**x)
    assert all(sum(s) == 1 for s in spy.seen)  # exactly one modality left every time
    assert {s for s in spy.seen} == {(True, False), (False, True)}
    spy.seen.clear()
    wrap.eval()
    wrap(**x)
    wrap(audio=x["audio"])  # an absent modality at inference is just absent
    assert spy.seen == [(True, True), (True, False)]
    soft = ModalityDropout(_Spy(), p_drop=1.0, per_sample=True, seed=0)
    out = soft.drop({"audio": torch.ones(64, 3), "video": torch.ones(64, 4)})
    zeroed_a, zeroed_v = (out["audio"].sum(1) == 0), (out["video"].sum(1) == 0)
    assert zeroed_a.any() and zeroed_v.any() and not (zeroed_a & zeroed_v).any()


def test_robust_wrapper_keeps_the_system_interface() -> None:
    model = build("goncalves2024_robust")
    assert model.labels == model.system.labels and model.embedding_dims == model.system.embedding_dims
    assert set(model.example_inputs(1)) == {"audio", "video"}


@pytest.fixture(scope="module")
def trained(data: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor], torch.Tensor]:
    """A tiny system trained a few steps on a real batch, and as targets its own predictions: the attacks are
    measured against what the model says, so nothing here depends on how well training went on this processor."""
    torch.set_num_threads(1)
    model = build("dixit2024_cnn_early").train()
    batch, y = real_batch(data)
    x = inputs_for(model, batch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(40):
        opt.zero_grad()
        model.loss(model(**x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    with torch.no_grad():
        own = model(**x)["logits"].argmax(-1)
    return model, x, own


@pytest.mark.parametrize("modality", ["audio", "video"])
def test_fgsm_and_pgd_raise_the_loss_within_the_budget(trained, modality: str) -> None:
    model, x, y = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    eps = 0.3 if modality == "audio" else 0.05
    clean = vulnerability(model, x, y, modality=modality, epsilons=[0.0])[0]
    adv_f = fgsm(model, x, y, modality=modality, epsilon=eps)
    adv_p = pgd(model, x, y, modality=modality, epsilon=eps, steps=5)
    for adv in (adv_f, adv_p):
        delta = (adv[modality] - x[modality]).abs().max()
        assert delta <= eps + 1e-6
        other = "video" if modality == "audio" else "audio"
        assert torch.equal(adv[other], x[other])
    if modality == "video":
        assert adv_p["video"].min() >= 0 and adv_p["video"].max() <= 1
    with torch.no_grad():
        f = torch.nn.functional.cross_entropy(model(**adv_f)["logits"], y).item()
        p = torch.nn.functional.cross_entropy(model(**adv_p)["logits"], y).item()
    assert clean["accuracy"] == 1.0  # the targets are the model's own answers
    assert f > clean["loss"] and p > clean["loss"]  # both attacks climb the loss
    assert not model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(q.grad is None for q in model.parameters())


def test_vulnerability_curve(trained) -> None:
    model, x, y = trained
    rows = vulnerability(model, x, y, modality="audio", epsilons=[0.0, 0.5, 2.0], attack="pgd", steps=3)
    assert [r["epsilon"] for r in rows] == [0.0, 0.5, 2.0]
    assert rows[0]["accuracy"] == 1.0  # epsilon 0 is the clean input, and the targets are the model's own answers
    assert rows[-1]["loss"] > rows[0]["loss"]  # the attack climbs the loss


def test_noise_at_snr_on_real_speech(data: Path) -> None:
    from avemo.media.audio import read_audio

    wave = read_audio(data / "ravdess-speech-16k" / "Actor_01" / "03-01-05-01-01-01-01.flac")
    for snr in (20.0, 5.0, 0.0):
        noisy = add_noise(wave, snr)
        noise = noisy - wave
        measured = 10 * np.log10(np.mean(wave**2) / np.mean(noise**2))
        assert abs(measured - snr) < 0.05
    babble = add_noise(wave, 10.0, noise=wave[::-1].copy())
    assert babble.shape == wave.shape
    assert np.array_equal(add_noise(np.zeros(100), 10.0), np.zeros(100))


def test_face_occlusion(data: Path) -> None:
    _, y = real_batch(data)
    faces = real_batch(data)[0]["video"]  # (4, 4, 1, 48, 48) real FER-2013 crops
    lower = occlude(faces, fraction=0.25, region="lower")
    covered = (lower == 0) & (faces != 0)
    assert covered[..., 24:, 12:36].float().mean() > 0.9 and not covered[..., :24, :].any()
    assert torch.equal(faces, real_batch(data)[0]["video"])  # the input is not changed
    img = (faces[0, 0, 0].numpy() * 255).astype(np.uint8)[..., None].repeat(3, -1)  # (48, 48, 3)
    occ = occlude(img, fraction=0.5, region="random", seed=3, channels_last=True, value=128)
    assert isinstance(occ, np.ndarray) and abs((occ == 128).all(-1).mean() - 0.5) < 0.05
    with pytest.raises(ValueError):
        occlude(img, region="chin")


def test_channel_corruptions_on_real_speech(clips):
    from avemo.media import read_audio
    from avemo.robustness.corruptions import change_gain, codec_round_trip, telephone_band

    x = read_audio(clips["ravdess_wav"], 16000)
    rms = lambda w: float(np.sqrt(np.mean(w.astype(np.float64) ** 2)))  # noqa: E731
    assert rms(change_gain(x, 6.0)) == pytest.approx(2 * rms(x), rel=0.01)
    assert np.abs(change_gain(x, 40.0)).max() <= 1.0
    t = np.arange(16000) / 16000
    tones = {f: np.sin(2 * np.pi * f * t).astype(np.float32) for f in (100, 1000, 6000)}
    kept = {f: rms(telephone_band(w, 16000)[2000:-2000]) / rms(w) for f, w in tones.items()}
    assert kept[1000] > 0.9 and kept[100] < 0.2 and kept[6000] < 0.05
    for codec, bitrate, min_snr in (("libmp3lame", 32000, 12.0), ("libopus", 16000, 10.0)):
        y = codec_round_trip(x, 16000, codec, bitrate)
        assert y.shape == x.shape  # same length and alignment: the error is small sample by sample
        assert 10 * np.log10(np.sum(x**2) / np.sum((x - y) ** 2)) > min_snr
    with pytest.raises(ValueError, match="codec"):
        codec_round_trip(x, 16000, "aac")
