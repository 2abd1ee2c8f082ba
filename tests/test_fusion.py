"""Calibrated late fusion: the module, its fitting, the shipped bundle and the published rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import avemo
from avemo.labels import BASIC7, EMOTIONS
from avemo.models.fusion.calibrated import CalibratedLateFusion
from avemo.models.fusion.late import onto_emotions
from avemo.training.fusion import fit_temperature, fit_weights, log_softmax

RESULTS = Path(__file__).parents[1] / "benchmarks" / "results" / "fusion_ravdess.json"


def _probs(n: int, k: int = 8, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).dirichlet(np.ones(k), size=n).astype(np.float32)
    return p


def test_fusion_sums_to_one_and_handles_missing_modalities():
    fusion = CalibratedLateFusion()
    fusion.set_parameters({"face": 2.0, "voice": 0.5}, {"face": 0.7, "voice": 1.3})
    voice, face7 = _probs(5), _probs(5, 7, seed=1)
    both = fusion.fuse({"voice": voice, "face": face7}, labels={"face": BASIC7})
    assert both.shape == (5, len(EMOTIONS)) and np.allclose(both.sum(1), 1, atol=1e-5)
    only_voice = fusion.fuse({"voice": voice, "face": None})
    expected = torch.softmax(torch.log(torch.from_numpy(voice).clamp_min(1e-4)) / 0.5, 1).numpy()
    assert np.allclose(only_voice, expected, atol=1e-5)  # one modality: its calibrated probabilities
    only_face = fusion.fuse({"face": face7}, labels={"face": BASIC7})
    assert np.allclose(only_face.sum(1), 1, atol=1e-5)
    calm, neutral = EMOTIONS.index("calm"), EMOTIONS.index("neutral")
    assert np.allclose(only_face[:, calm], only_face[:, neutral])  # no calm in FER: calm inherits neutral
    # per-row absence (NaN), and no modality at all
    voice_nan = voice.copy()
    voice_nan[0] = np.nan
    mixed = fusion.fuse({"voice": voice_nan, "face": face7}, labels={"face": BASIC7})
    assert np.allclose(mixed[0], only_face[0], atol=1e-5) and np.allclose(mixed[1:], both[1:], atol=1e-5)
    face_nan = np.full_like(face7, np.nan)
    assert np.isnan(fusion.fuse({"voice": voice_nan, "face": face_nan}, labels={"face": BASIC7})[0]).all()


def test_onto_emotions_projects_seven_classes():
    p = np.zeros((1, 7), dtype=np.float32)
    p[0, BASIC7.index("neutral")] = 1.0
    q = onto_emotions(p, BASIC7)
    assert q[0, EMOTIONS.index("neutral")] == pytest.approx(0.5) and q[0, EMOTIONS.index("calm")] == pytest.approx(0.5)


def test_temperature_and_weights_are_fitted_sensibly():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 400)
    informative = rng.normal(size=(400, 8))
    informative[np.arange(400), y] += 2.0
    overconfident = informative * 5
    assert fit_temperature(overconfident, y) > 2.0
    noise = rng.normal(size=(400, 8))
    w = fit_weights([log_softmax(informative), log_softmax(noise)], y, [0.0, 0.5, 1.0, 1.5])
    assert w[0] > w[1]


def test_shipped_fusion_bundle():
    if "fusion.ravdess" not in avemo.list_models(pretrained=True):
        pytest.skip("fusion.ravdess not shipped yet")
    bundle = avemo.load("fusion.ravdess")
    assert bundle.kind == "fusion" and bundle.labels == EMOTIONS and set(bundle.weights) == {"face", "voice"}
    model = bundle.get_model()  # numpy: no torch needed to fuse
    fused = model.fuse({"voice": _probs(3), "face": _probs(3, 7)}, labels={"face": BASIC7})
    assert np.allclose(fused.sum(1), 1, atol=1e-5)
    assert np.allclose(model.fuse({"voice": _probs(3)}).sum(1), 1, atol=1e-5)
    assert np.allclose(model.fuse({"face": _probs(3, 7)}, labels={"face": BASIC7}).sum(1), 1, atol=1e-5)
    card = bundle.card
    assert "What was validated" in card and "What was not validated" in card


def test_numpy_runtime_equals_the_torch_module():
    bundle = avemo.load("fusion.fer2013_ravdess")
    voice, face7 = _probs(6, seed=2), _probs(6, 7, seed=3)
    voice[1] = np.nan
    face7[2] = np.nan
    voice[3], face7[3] = np.nan, np.nan
    given = {"voice": voice, "face": face7}
    a = bundle.get_model().fuse(given, labels={"face": BASIC7})
    b = bundle.get_model("torch").fuse(given, labels={"face": BASIC7})
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.isnan(a[3]).all() and not np.isnan(a[[0, 1, 2, 4, 5]]).any()


def test_published_fusion_rows_cover_six_folds():
    if not RESULTS.is_file():
        pytest.skip("fusion results not published yet")
    res = json.loads(RESULTS.read_text())
    assert set(res["rows"]) == {"au_only", "voice_only", "late_fusion", "learned_fusion"}
    for row in res["rows"].values():
        assert len(row["folds"]) == 6 and sum(f["n"] for f in row["folds"]) == 1440


def test_expected_calibration_error():
    from avemo.training.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.3, 1.0, 20000)
    y = np.zeros(20000, dtype=int)
    pred_right = rng.uniform(size=20000) < conf  # right exactly as often as it claims
    probs = np.stack([conf, 1 - conf], axis=1)
    y[~pred_right] = 1
    assert expected_calibration_error(probs, y) < 0.02
    assert expected_calibration_error(np.stack([np.ones(20000), np.zeros(20000)], 1), y) > 0.2  # overconfident


def test_log_linear_fusion_has_its_face_models_own_temperature(data):
    """fusion.fervideo_multi6 (the log-linear rule beside the default reliability fusion) was calibrated for the
    default face model: its face temperature refits to the same value on PublicTest."""
    from avemo.datasets import load_fer_image, read_corpus
    from avemo.inference.predictors import FacePredictor
    from avemo.training.fusion import fit_temperature

    bundle = avemo.load("fusion.fervideo_multi6")
    shipped = bundle.temperatures["face"]
    face = FacePredictor(bundle.meta["calibration"]["face_bundle"], tta="flip", int8=True, threads=1)
    samples = [s for s in read_corpus("fer2013", data / "fer2013") if s.split == "public_test"][::6]  # 599 faces
    logp = np.log(np.clip(face.probs(np.stack([load_fer_image(s) for s in samples])), 1e-8, 1.0))
    y = np.array([face.labels.index(s.label) for s in samples])
    assert fit_temperature(logp, y) == pytest.approx(shipped, abs=0.2)
    calibration = bundle.meta["calibration"]
    if calibration["voice_bundle"] == "voice.ravdess8":  # its temperature was fitted with fusion.ravdess
        assert bundle.temperatures["voice"] == pytest.approx(avemo.load("fusion.ravdess").temperatures["voice"])
    else:  # a voice bundle calibrated inside (voice.multi6: its head's own temperature) is taken as it is
        assert bundle.temperatures["voice"] == 1.0 and "calibrated inside" in calibration["voice_temperature_source"]
