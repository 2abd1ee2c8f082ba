"""The reliability-weighted fusion and the published decision fusion on real stored predictions (held-out voice
clips of the six speech corpora, FER-2013 PrivateTest faces, CARER test sentences) and on the shared clips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import avemo
from avemo.errors import ModelError
from avemo.labels import BASIC7, EMOTIONS, project_probs
from avemo.models.bundles import load
from avemo.models.fusion.reliability import DecisionFusion, ReliabilityFusion, dominated, prob_features

ROOT = Path(__file__).parents[1]
RES = ROOT / "benchmarks" / "results"
TEXT_LABELS = ("happy", "sad", "angry", "fearful", "surprised")


@pytest.fixture(scope="module")
def real() -> dict:
    """400 held-out voice clips (leave one corpus out, voice.multi6's recipe, at its temperature), each with a
    FER-2013 PrivateTest face of the same class (face.fervideo), and, where text has the class, a CARER test
    sentence of the same class (text.carer)."""
    rng = np.random.default_rng(0)
    head = load("voice.multi6").preprocessing.head
    recipe = load("voice.multi6").meta["recipe"]["name"]
    v = pd.read_csv(RES / "voice_multi" / f"loco_probs_{recipe}.csv.gz")
    v = v[v.label != "calm"].sample(400, random_state=0)
    logp = np.log(np.clip(v[list(EMOTIONS)].to_numpy(np.float64), 1e-12, None)) / head["temperature"]
    voice = np.exp(logp - logp.max(1, keepdims=True))
    voice /= voice.sum(1, keepdims=True)
    y = v.label.map(EMOTIONS.index).to_numpy()
    z = np.load(RES / "face_crossdomain" / "probs.npz")
    fy = np.array([EMOTIONS.index(BASIC7[i]) for i in z["fer_private_clean/y"]])
    pick = np.array([rng.choice(np.flatnonzero(fy == k)) for k in y])
    face = z["fer_private_clean/chosen"].astype(np.float64)[pick]
    face /= face.sum(1, keepdims=True)  # stored as float16
    landmarks = z["fer_private_clean/landmarks"].astype(np.float64)[pick]
    t = pd.read_csv(RES / "fusion_crossdomain" / "text_carer_probs.csv.gz")
    t = t[t.split == "test"]
    ty = t.label.map(EMOTIONS.index).to_numpy()
    text = np.full((len(y), len(TEXT_LABELS)), np.nan)
    words = np.full(len(y), np.nan)
    for i, k in enumerate(y):
        if EMOTIONS[k] in TEXT_LABELS:
            j = rng.choice(np.flatnonzero(ty == k))
            text[i], words[i] = t[list(TEXT_LABELS)].to_numpy(np.float64)[j], t.emotion_words.to_numpy()[j]
    return {"y": y, "face": face, "voice": voice, "text": text, "landmarks": landmarks,
            "speech": rng.uniform(0.3, 1.0, len(y)), "emotion_words": words}


@pytest.fixture(scope="module")
def fusion() -> ReliabilityFusion:
    return load("fusion.reliability").get_model()


LABELS = {"face": BASIC7, "voice": EMOTIONS, "text": TEXT_LABELS}


def _fuse(f, real: dict, mods=("face", "voice", "text"), evidence=True):
    probs = {m: real[m] for m in mods}
    ev = {"face": real["landmarks"][:, None], "voice": real["speech"][:, None]} if evidence else None
    return f.fuse_details(probs, {m: LABELS[m] for m in mods}, ev)


def test_weights_sum_to_one_over_the_present_modalities(fusion, real) -> None:
    out = _fuse(fusion, real)
    present = np.stack([~np.isnan(real[m]).any(1) for m in out.modalities], axis=1)
    np.testing.assert_allclose(out.weights.sum(1), 1.0, atol=1e-6)
    assert (out.weights[~present] == 0).all() and (out.weights[present] > 0).all()
    np.testing.assert_allclose(np.nansum(out.fused, 1), 1.0, atol=1e-5)
    assert out.fused.shape == (len(real["y"]), len(EMOTIONS))


def test_one_modality_present_is_that_modality_exactly(fusion, real) -> None:
    n = len(real["y"])
    nan_face = np.full_like(real["face"], np.nan)
    silent = np.full_like(real["voice"], np.nan)
    # no face in the window: the voice's probabilities, weight 1
    fused, w, _ = fusion.fuse({"face": nan_face, "voice": real["voice"]}, LABELS)
    np.testing.assert_array_equal(fused, real["voice"].astype(np.float32))
    np.testing.assert_array_equal(w, np.tile([0, 1, 0], (n, 1)))
    # silence (no voice prediction): the face's own probabilities on EMOTIONS (calm 0), weight 1
    fused, w, _ = fusion.fuse({"face": real["face"], "voice": silent}, LABELS)
    np.testing.assert_array_equal(fused, project_probs(real["face"], BASIC7, EMOTIONS))
    np.testing.assert_array_equal(w, np.tile([1, 0, 0], (n, 1)))
    # a text-only window (words, no face, no speech scored) works the same way
    has_text = ~np.isnan(real["text"]).any(1)
    fused, w, unc = fusion.fuse({"text": real["text"][has_text]}, LABELS)
    np.testing.assert_array_equal(fused, project_probs(real["text"][has_text], TEXT_LABELS, EMOTIONS))
    assert (w[:, 2] == 1).all() and (unc == (fused.max(1) < 0.5)).all()
    # nothing present: NaN, weights 0, not uncertain (there is nothing to be unsure of)
    fused, w, unc = fusion.fuse({"face": nan_face, "voice": silent}, LABELS)
    assert np.isnan(fused).all() and (w == 0).all() and not unc.any()


def test_the_fused_label_is_never_outranked_in_every_modality(fusion, real) -> None:
    for mods in (("face", "voice"), ("face", "voice", "text")):
        out = _fuse(fusion, real, mods)
        label = out.fused.argmax(1)
        probs = {m: real[m] for m in mods}
        both = np.all([~np.isnan(real[m]).any(1) for m in mods], axis=0)
        assert not dominated(label[both], {m: p[both] for m, p in probs.items()}, LABELS).any()
    # with two modalities: the face's first choice, the voice's, or a class each ranks above the other's first
    out = _fuse(fusion, real, ("face", "voice"))
    f = project_probs(real["face"], BASIC7, EMOTIONS)
    f[:, EMOTIONS.index("calm")] = f[:, EMOTIONS.index("neutral")]
    v = real["voice"]
    lab = out.fused.argmax(1)
    rows = np.arange(len(lab))
    ff, vf = f.argmax(1), v.argmax(1)
    compromise = (lab != ff) & (lab != vf)
    assert compromise.any()  # the rule is exercised on this data
    assert (f[rows, lab] >= f[rows, vf])[compromise].all() and (v[rows, lab] >= v[rows, ff])[compromise].all()
    # and dominated() does find out-ranked labels where they are (the voice's last choice among the classes the
    # face has too: calm, which the face lacks, can be no one's out-ranked label)
    worst = np.where(np.arange(len(EMOTIONS)) == EMOTIONS.index("calm"), np.inf, v).argmin(1)
    assert dominated(worst, {"face": real["face"], "voice": v}, LABELS).mean() > 0.9


def test_uncertain_flag_and_evidence(fusion, real) -> None:
    out = _fuse(fusion, real, ("face", "voice"))
    assert (out.uncertain == (out.fused.max(1) < fusion.uncertain_below)).all()
    assert 0 < out.uncertain.mean() < 1
    # the evidence each weight rests on: confidence, margin, certainty, then the flag
    np.testing.assert_allclose(out.evidence["face"][:, :3], prob_features(real["face"]))
    np.testing.assert_array_equal(out.evidence["voice"][:, 3], real["speech"])
    # no flags given (or NaN ones): the bundle's defaults, the same result
    a = _fuse(fusion, real, ("face", "voice"), evidence=False)
    b = fusion.fuse_details({m: real[m] for m in ("face", "voice")}, LABELS,
                            {"face": np.full((len(real["y"]), 1), np.nan), "voice": None})
    np.testing.assert_array_equal(a.fused, b.fused)
    np.testing.assert_array_equal(a.evidence["face"][:, 3], fusion.flag_defaults["face"][0])
    with pytest.raises(ValueError, match="evidence must be"):
        fusion.fuse({"face": real["face"]}, LABELS, {"face": np.zeros((len(real["y"]), 2))})


def test_each_weight_is_its_modalitys_reliability_from_its_own_evidence(fusion, real) -> None:
    """``r_m = softplus(c_m . [1, evidence_m])`` from the modality's own evidence only: changing the voice leaves the
    face's reliability as it was, and the weights are the reliabilities normalised."""
    out = _fuse(fusion, real, ("face", "voice"))
    r = {m: np.logaddexp(0, fusion.coefficients[m][0] + out.evidence[m] @ fusion.coefficients[m][1:])
         for m in ("face", "voice")}
    np.testing.assert_allclose(out.weights[:, 0], r["face"] / (r["face"] + r["voice"]), rtol=1e-5)
    flat = np.sqrt(real["voice"]) / np.sqrt(real["voice"]).sum(1, keepdims=True)
    other = fusion.fuse_details({"face": real["face"], "voice": flat}, LABELS,
                                {"face": real["landmarks"][:, None], "voice": real["speech"][:, None]})
    np.testing.assert_array_equal(other.evidence["face"], out.evidence["face"])
    assert not np.allclose(other.weights, out.weights)
    # the fused probabilities are the reliability-weighted log-linear pool
    logp = {"face": np.log(np.clip(real["face"], 1e-4, None)), "voice": np.log(np.clip(real["voice"], 1e-4, None))}
    f8 = np.repeat(logp["face"].mean(1, keepdims=True), 8, 1)
    for j, e in enumerate(BASIC7):
        f8[:, EMOTIONS.index(e)] = logp["face"][:, j] - np.log(np.exp(logp["face"]).sum(1))
    f8[:, EMOTIONS.index("calm")] = f8[:, EMOTIONS.index("neutral")]
    v8 = logp["voice"] - np.log(np.exp(logp["voice"]).sum(1, keepdims=True))
    z = r["face"][:, None] * f8 + r["voice"][:, None] * v8
    want = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(out.fused, want / want.sum(1, keepdims=True), atol=1e-5)


def test_decision_fusion_is_the_published_weighted_average(real) -> None:
    dec = load("fusion.decision_557").get_model()
    assert isinstance(dec, DecisionFusion) and dec.weights == {"face": 0.55, "voice": 0.38, "text": 0.07}
    fused, w, _ = dec.fuse({m: real[m] for m in ("face", "voice", "text")}, LABELS)
    both = ~np.isnan(real["text"]).any(1)
    want = (0.55 * project_probs(real["face"], BASIC7, EMOTIONS) + 0.38 * real["voice"]
            + 0.07 * np.nan_to_num(project_probs(real["text"], TEXT_LABELS, EMOTIONS)))
    np.testing.assert_allclose(fused[both], want[both], atol=1e-5)
    np.testing.assert_allclose(w[both], np.tile([0.55, 0.38, 0.07], (both.sum(), 1)), atol=1e-6)
    np.testing.assert_allclose(w[~both], np.tile([0.55 / 0.93, 0.38 / 0.93, 0], ((~both).sum(), 1)), atol=1e-6)
    fused, w, _ = dec.fuse({"face": np.full_like(real["face"], np.nan), "voice": real["voice"]}, LABELS)
    np.testing.assert_array_equal(fused, real["voice"].astype(np.float32))


def test_bundles_load_checked(tmp_path) -> None:
    rel = load("fusion.reliability")
    assert rel.kind == "fusion" and rel.architecture == "reliability_fusion" and rel.labels == EMOTIONS
    assert rel.modalities == ("face", "voice", "text") and rel.weights == {} and rel.temperatures == {}
    assert "non-commercial" in rel.card.lower() and "independent" in rel.card
    with pytest.raises(ModelError, match="numpy only"):  # the fixed-weight rule has no torch module
        load("fusion.decision_557").get_model("torch")
    for old in ("fusion.ravdess", "fusion.fer2013_ravdess"):  # the log-linear bundles still load and run
        b = load(old)
        assert b.architecture == "fusion" and set(b.weights) == {"face", "voice"}
        assert b.get_model().fuse({"voice": np.full((1, 8), 1 / 8)}).shape == (1, 8)
    folder = tmp_path / "fusion.reliability"
    shutil.copytree(rel.path, folder)
    spec = json.loads((folder / "bundle.json").read_text())
    spec["preprocessing"]["temperatures"] = {"face": 1.0}
    (folder / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match=r"unknown \['temperatures'\]"):
        avemo.load(folder)
    assert rel.get_model().gates == {"text": "text_emotion_words"}
    del spec["preprocessing"]["temperatures"], spec["preprocessing"]["gates"]  # a bundle from before the gate
    (folder / "bundle.json").write_text(json.dumps(spec))
    assert avemo.load(folder).get_model().gates == {}


def test_fitting_on_real_pairings(real) -> None:
    from avemo.training.reliability_fusion import FusionData, fit_reliability, restricted_argmax

    n = len(real["y"])
    d = FusionData({"face": real["face"], "voice": real["voice"]}, {"face": BASIC7, "voice": EMOTIONS},
                   {"face": real["landmarks"][:, None], "voice": real["speech"][:, None]}, real["y"],
                   np.ones((n, len(EMOTIONS)), bool), np.ones(n))
    f = fit_reliability(d, ("face", "voice"))
    g = fit_reliability(d, ("face", "voice"), use_evidence=False)
    assert all((np.asarray(c[1:]) == 0).all() for c in g.coefficients.values())
    assert all(c[-1] >= 0 for c in f.coefficients.values())  # flags never lower a modality's weight
    acc = {k: float(np.mean(restricted_argmax(p, d.classes) == d.y)) for k, p in (
        ("face", project_probs(real["face"], BASIC7, EMOTIONS)), ("voice", real["voice"]),
        ("fused", f.fuse({"face": real["face"], "voice": real["voice"]}, d.labels, d.flags)[0]))}
    assert acc["fused"] > max(acc["face"], acc["voice"])  # fitted on these very pairs: a sanity check of fitting


def test_published_fusion_results_cover_every_pairing_and_fold() -> None:
    path = RES / "fusion_crossdomain" / "results.json"
    res = json.loads(path.read_text())
    assert set(res["loco"]) == {"ravdess", "savee", "emovo", "casia", "urdu", "bangla-ext"}
    for r in res["loco"].values():
        assert len(r["pairs"]) == 8
        for p in r["pairs"].values():
            assert {"face", "voice", "loglinear_1_1", "decision_published", "reliability"} <= set(p["methods"])
            assert p["reliability_audit"]["dominated"] == 0
    assert len(res["ravdess_au"]["methods"]["reliability"]["per_fold"]) == 6


def test_shared_clip_windows(clips) -> None:
    """The analyzer's default fusion on the shared clips: every window's ``weight_*`` columns sum to one over its
    present modalities; the video without audio is its face exactly, the recording without video its voice
    exactly (weight 1); ``uncertain`` is the fused label's probability under one half."""
    from avemo.inference.analyzer import Analyzer
    from avemo.inference.result import prob_columns

    analyzer = Analyzer()
    assert analyzer.fusion.name == "fusion.reliability"
    for name in ("cremad_ang", "cremad_hap", "cremad_sad", "ravdess_mp4", "ravdess_wav"):
        tl = analyzer.analyze(clips[name])
        w = tl[["weight_face", "weight_voice"]].to_numpy(np.float64)
        np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-4, err_msg=name)
        fused = tl[prob_columns("fused")].to_numpy(np.float64)
        np.testing.assert_array_equal(tl["uncertain"].to_numpy(bool), fused.max(1) < 0.5)
        if name.startswith("cremad"):  # a face and speech in every window: both count
            assert (tl["source"] == "av").all() and (w > 0.05).all(), name
        else:
            alone = "face" if name == "ravdess_mp4" else "voice"
            assert (tl["source"] == alone).all() and (tl[f"weight_{alone}"] == 1.0).all(), name
            np.testing.assert_array_equal(fused, tl[prob_columns(alone)].to_numpy(np.float64))


def test_a_text_only_window_is_its_text(fusion) -> None:
    """Words alone (no face, no voice): the fused answer is the text model's, over its classes, weight 1."""
    from avemo.inference.predictors import Fusion

    text = np.zeros((2, len(EMOTIONS)), np.float32)
    text[:, [EMOTIONS.index(e) for e in TEXT_LABELS]] = [[0.6, 0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1, 0.6]]
    nan = np.full((2, len(EMOTIONS)), np.nan, np.float32)
    out = Fusion("fusion.reliability").fuse_details({"face": nan, "voice": nan, "text": text},
                                                    {"face": BASIC7, "text": TEXT_LABELS})
    np.testing.assert_allclose(out.fused, text, atol=1e-6)
    np.testing.assert_array_equal(out.weights, [[0, 0, 1], [0, 0, 1]])
    assert out.uncertain.tolist() == [False, False]


def test_fusion_runtime_imports_no_torch() -> None:
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        import numpy as np
        import avemo
        f = avemo.load("fusion.reliability").get_model()
        p = np.full((2, 8), 1 / 8)
        fused, w, u = f.fuse({"face": p[:, :7] * 8 / 7, "voice": p},
                             {"face": avemo.labels.BASIC7, "voice": avemo.labels.EMOTIONS}, None)
        d = avemo.load("fusion.decision_557").get_model().fuse({"voice": p})
        print("TORCH", sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TORCH []" in proc.stdout


def test_text_without_emotion_words_sits_out_unless_alone(fusion, real) -> None:
    """The text's gate: where its emotion-word count is given as 0, the text has weight 0 and the fused answer is
    face + voice's exactly; given as 1 or more (or not given), it counts; alone, it is the answer even at 0."""
    mods = ("face", "voice", "text")
    has = ~np.isnan(real["text"]).any(1)
    words = np.where(np.arange(len(has)) % 3 == 0, 0.0, np.maximum(real["emotion_words"], 1.0))
    ev = {"face": real["landmarks"][:, None], "voice": real["speech"][:, None], "text": words[:, None]}
    out = fusion.fuse_details({m: real[m] for m in mods}, LABELS, ev)
    closed, open_ = has & (words == 0), has & (words > 0)
    assert closed.sum() > 20 and open_.sum() > 20
    assert (out.weights[closed, 2] == 0).all() and (out.weights[open_, 2] > 0).all()
    two = _fuse(fusion, real, ("face", "voice"))
    np.testing.assert_allclose(out.fused[closed], two.fused[closed], atol=1e-6)
    np.testing.assert_allclose(out.weights[closed], two.weights[closed], atol=1e-6)
    assert np.isfinite(out.evidence["text"][closed]).all()  # the evidence is still shown
    ungated = fusion.fuse_details({m: real[m] for m in mods}, LABELS, {**ev, "text": None})
    assert (ungated.weights[has, 2] > 0).all()  # not given: the gate is open
    alone = fusion.fuse_details({"text": real["text"][has][:5]}, {"text": TEXT_LABELS},
                                {"text": np.zeros((5, 1))})
    np.testing.assert_array_equal(alone.weights, np.tile([0, 0, 1], (5, 1)))


def test_torch_module_is_the_runtime_and_differentiable(fusion, real) -> None:
    """``get_model("torch")`` of fusion.reliability (what the robustness report attacks through) gives the numpy
    runtime's fused probabilities on real pairings, with and without text, and gradients reach the inputs."""
    import torch

    module = load("fusion.reliability").get_model("torch")
    for mods in (("face", "voice"), ("face", "voice", "text")):
        words = np.where(np.arange(len(real["y"])) % 3 == 0, 0.0, real["emotion_words"])[:, None]  # some gated
        ev = {"face": real["landmarks"][:, None], "voice": real["speech"][:, None], "text": words}
        want = fusion.fuse_details({m: real[m] for m in mods}, LABELS, ev).fused
        tensors = {m: torch.tensor(real[m]) for m in mods}
        got = module(tensors, {m: LABELS[m] for m in mods}, {m: torch.tensor(e) for m, e in ev.items()})
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-5)
    face = torch.tensor(real["face"][:8], requires_grad=True)
    out = module({"face": face, "voice": torch.tensor(real["voice"][:8])}, {"face": BASIC7})
    torch.log(out[:, 2]).sum().backward()
    assert torch.isfinite(face.grad).all() and face.grad.abs().sum() > 0
