"""The robustness report's pieces on real data: the conditions do what they say, the attacks keep to their budgets
in signal units, and ``avemo robustness --quick`` writes its JSON, figures and BENCHMARKS.md section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avemo.robustness import conditions as c


@pytest.fixture(scope="module")
def speech(clips) -> np.ndarray:
    from avemo.media import read_audio

    return read_audio(clips["ravdess_wav"], 16000)


@pytest.fixture(scope="module")
def faces(data) -> np.ndarray:
    from avemo.datasets import load_fer_image, read_corpus

    private = [s for s in read_corpus("fer2013", data / "fer2013") if s.split == "private_test"][:8]
    return np.stack([load_fer_image(s) for s in private])


def _band_energy(x: np.ndarray, sr: int, low: float, high: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1 / sr)
    return float(spec[(f >= low) & (f < high)].sum())


def test_voice_conditions(speech):
    from avemo.robustness.corruptions import add_noise

    talkers = [speech[:8000], speech[8000:20000], speech[20000:]]
    noise = c.babble(talkers, speech.size, n=3, seed=1)
    assert noise.shape == speech.shape and np.std(noise) > 0
    noisy = add_noise(speech, 10.0, noise=noise)
    snr = 10 * np.log10(np.mean(speech**2) / np.mean((noisy - speech) ** 2))
    assert snr == pytest.approx(10.0, abs=0.01)
    wet = c.reverberate(speech, 16000, 0.8, seed=0)
    assert wet.shape == speech.shape and np.mean(wet**2) == pytest.approx(np.mean(speech**2), rel=0.02)
    assert not np.allclose(wet, speech, atol=1e-3)
    narrow = c.narrowband(speech, 16000)
    assert narrow.shape == speech.shape
    assert _band_energy(narrow, 16000, 4200, 8000) < 1e-3 * _band_energy(speech, 16000, 4200, 8000)
    assert _band_energy(narrow, 16000, 300, 3000) == pytest.approx(_band_energy(speech, 16000, 300, 3000), rel=0.05)


def test_face_conditions(faces):
    for out in (c.blur(faces, 1.0), c.low_light(faces, 0.25), c.jpeg(faces, 10), c.h264(faces, 40),
                c.occlude_band(faces, "eyes"), c.turn_head(faces, yaw=30.0)):
        assert out.shape == faces.shape and out.dtype == np.uint8
    assert c.low_light(faces, 0.25).mean() < faces.mean() and np.array_equal(c.low_light(faces, 1.0), faces)
    eyes = c.occlude_band(faces, "eyes")
    r0, r1 = (round(f * 48) for f in c.BANDS["eyes"])
    assert all(len(np.unique(e[r0:r1])) == 1 for e in eyes) and np.array_equal(eyes[:, r1:], faces[:, r1:])
    assert np.abs(c.turn_head(faces).astype(int) - faces).max() <= 1  # no turn, no change
    assert np.abs(c.h264(faces, 40).astype(int) - faces).mean() > np.abs(c.h264(faces, 20).astype(int) - faces).mean()


def test_attacks_keep_their_budgets_in_signal_units(speech, faces):
    import torch

    from avemo.robustness.adversarial import fgsm, pgd_joint

    torch.manual_seed(0)

    class Toy(torch.nn.Module):  # a real gradient through both inputs
        def __init__(self) -> None:
            super().__init__()
            self.a, self.v = torch.nn.Linear(1600, 3), torch.nn.Linear(48 * 48, 3)

        def forward(self, audio=None, video=None):
            return {"logits": self.a(audio) + self.v(video.flatten(1))}

    model = Toy()
    audio = torch.from_numpy(np.stack([speech[16000:17600], 0.1 * speech[20000:21600]]))
    video = torch.from_numpy(faces[:2, None].astype(np.float32) / 255)
    y = torch.tensor([0, 1])
    rms = audio.pow(2).mean(1, keepdim=True).sqrt()
    eps_audio = rms * 10 ** (-30 / 20)  # 30 dB SNR, per example
    adv = fgsm(model, {"audio": audio, "video": video}, y, modality="audio", epsilon=eps_audio)
    snr = 10 * torch.log10(audio.pow(2).mean(1) / (adv["audio"] - audio).pow(2).mean(1))
    torch.testing.assert_close(snr, torch.full((2,), 30.0), atol=1e-3, rtol=0)  # FGSM: exactly the stated SNR
    adv = pgd_joint(model, {"audio": audio, "video": video}, y, epsilons={"audio": eps_audio, "video": 4 / 255},
                    steps=3)
    assert ((adv["audio"] - audio).abs() <= eps_audio + 1e-7).all()  # so the SNR is at least 30 dB
    assert (adv["video"] - video).abs().max() <= 4 / 255 + 1e-6 and 0 <= adv["video"].min() <= adv["video"].max() <= 1
    assert not torch.equal(adv["video"], video) and not torch.equal(adv["audio"], audio)


@pytest.mark.slow
def test_quick_report_writes_json_figures_and_section(tmp_path, monkeypatch):
    from avemo.cli import main
    from avemo.robustness import report

    monkeypatch.setattr(report, "QUICK", report.Sizes(ravdess_per_actor=1, ravdess_actors=4, savee_per_speaker=1,
                                                      face_n=16, voice_attack_n=2, face_attack_n=4, pairs_n=2,
                                                      pgd_steps=1, babble_pool=6))
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nother sections stay\n")
    assert main(["robustness", "--quick", "--results", str(tmp_path / "r"), "--out", str(md)]) == 0
    result = json.loads((tmp_path / "r" / "report.json").read_text())
    assert result["models"] == dict(report.DEFAULT_MODELS)  # the shipped defaults, whatever they are
    ravdess, savee = result["voice"]["ravdess"], result["voice"]["savee"]
    trained_on = result["voice"]["trained_on"].lower()
    assert ravdess["n"] == 4 and savee["n"] == 4
    assert ravdess["seen_by_model"] == ("ravdess" in trained_on) and savee["seen_by_model"] == ("savee" in trained_on)
    assert len(ravdess["rows"]) == 15 and len(result["face"]["rows"]) == 14 and result["face"]["n"] == 16
    for part in (ravdess["rows"], savee["rows"], result["face"]["rows"], result["missing"]["rows"],
                 *(result["adversarial"][k]["rows"] for k in ("voice", "face", "both", "defence"))):
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in part)
    text = md.read_text()
    assert "other sections stay" in text and "Quick mode" in text and "trained on these speakers" in text
    for fig in ("voice_noise.png", "face_conditions.png", "adversarial.png"):
        assert (tmp_path / "r" / fig).stat().st_size > 1000 and f"]({Path('r') / fig})" in text


def test_attacked_networks_are_scored_in_eval_mode(clips, faces):
    """The attacks restore the mode they found: the report's networks stay in eval mode, so an accuracy after an
    attack is the network's own (no dropout, no batch statistics)."""
    import torch

    from avemo.robustness import report
    from avemo.robustness.adversarial import pgd

    voice, face = report.VoicePath("voice.ravdess8"), report.FacePath("face.fer2013")
    models = report._torch_models(voice, face, "fusion.fer2013_ravdess")
    keyed = models["keyed"]()
    assert not any(m.training for m in keyed.modules())
    video = torch.from_numpy(faces.astype(np.float32)[:, None] / 255)
    y = torch.zeros(len(faces), dtype=torch.long)
    with torch.no_grad():
        before = keyed(video=video)["logits"]
    pgd(keyed, {"video": video}, y, modality="video", epsilon=2 / 255, steps=1)
    assert not any(m.training for m in keyed.modules())
    with torch.no_grad():
        torch.testing.assert_close(keyed(video=video)["logits"], before)


def test_scaled_sizes_cut_every_subset_and_keep_the_attack_settings():
    from avemo.robustness.report import Sizes, scaled_sizes

    base, cut = Sizes(), scaled_sizes(0.34)
    assert cut.ravdess_per_actor == 4 and cut.savee_per_speaker == 20 and cut.face_n == 408
    assert cut.pgd_steps == base.pgd_steps and cut.babble_pool == base.babble_pool and cut.seed == base.seed
    assert scaled_sizes(1e-6).pairs_n == 1 and scaled_sizes(1.0) == base


def test_training_record_is_described_in_words():
    from avemo.robustness.report import describe_training

    record = {"corpora": {"ravdess": 1440, "savee": 480}, "clips": 1920}
    assert describe_training(record) == "2 corpora, 1920 clips: ravdess 1440, savee 480"
    assert describe_training("ravdess: all 1440 clips") == "ravdess: all 1440 clips"
