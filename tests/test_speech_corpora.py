"""The six shared speech corpora as one set: counts per corpus (from the datasets README), label sets,
speaker-independent leave-one-corpus-out and RAVDESS+ folds, and the corpus-masked loss."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from avemo.datasets.speech import (
    SPEECH_CORPORA,
    label_mask,
    label_sets,
    loco_folds,
    ravdess_plus_folds,
    read_speech_corpora,
    read_speech_corpus,
)
from avemo.datasets.splits import check_speaker_independent
from avemo.errors import DatasetError
from avemo.labels import EMOTIONS
from avemo.training.speech_heads import balanced_weights, fit_class_bias, masked_cross_entropy

# clips, speakers and clips per label, as the datasets README states them
EXPECTED = {
    "ravdess": (1440, 24, {"neutral": 96, "calm": 192, "happy": 192, "sad": 192, "angry": 192, "fearful": 192,
                           "disgust": 192, "surprised": 192}),
    "savee": (480, 4, {"neutral": 120, **{e: 60 for e in ("happy", "sad", "angry", "fearful", "disgust",
                                                          "surprised")}}),
    "emovo": (588, 6, {e: 84 for e in ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")}),
    "casia": (1200, 4, {e: 200 for e in ("neutral", "happy", "sad", "angry", "fearful", "surprised")}),
    "urdu": (400, 29, {e: 100 for e in ("neutral", "happy", "sad", "angry")}),
    "bangla-ext": (261, 15, {"fearful": 126, "disgust": 135}),
}


@pytest.fixture(scope="module")
def samples(data):
    return read_speech_corpora()


@pytest.mark.parametrize("name", list(SPEECH_CORPORA))
def test_each_corpus_reader_counts(data, name):
    got = read_speech_corpus(name)
    n, n_speakers, per_label = EXPECTED[name]
    assert len(got) == n
    assert len({s.speaker for s in got}) == n_speakers
    assert dict(Counter(s.label for s in got)) == per_label
    assert all(s.corpus == name and s.modality == "audio" and s.path.is_file() for s in got[:50])


def test_unknown_corpus_is_a_dataset_error(data):
    with pytest.raises(DatasetError, match="not a shared speech corpus"):
        read_speech_corpus("crema-d")


def test_label_sets_and_mask(samples):
    sets = label_sets(samples)
    assert sets["ravdess"] == EMOTIONS
    assert sets["urdu"] == ("neutral", "happy", "sad", "angry")
    assert sets["bangla-ext"] == ("fearful", "disgust")
    assert "calm" not in sets["savee"] and "disgust" not in sets["casia"]
    mask = label_mask(samples, sets)
    y = np.array([EMOTIONS.index(s.label) for s in samples])
    assert mask.shape == (4369, 8) and mask[np.arange(len(y)), y].all()
    assert mask.sum(1).min() == 2 and mask.sum(1).max() == 8


def test_loco_and_ravdess_plus_folds_are_speaker_independent(samples):
    loco = loco_folds(samples, list(SPEECH_CORPORA))
    check_speaker_independent(samples, loco, complete=True)
    for fold, name in zip(loco, SPEECH_CORPORA):
        assert {samples[i].corpus for i in fold.test_idx} == {name}
        assert name not in {samples[i].corpus for i in fold.train_idx}
    folds = ravdess_plus_folds(samples)
    check_speaker_independent(samples, folds)
    assert len(folds) == 6 and sum(f.test_idx.size for f in folds) == 1440
    for f in folds:
        assert {samples[i].corpus for i in f.test_idx} == {"ravdess"}
        assert {samples[i].corpus for i in f.train_idx} == set(SPEECH_CORPORA)  # others on the training side
        assert f.train_idx.size == 4369 - 240


def test_masked_loss_ignores_absent_classes():
    torch.manual_seed(0)
    logits = torch.randn(4, 8, requires_grad=True)
    target = torch.tensor([0, 2, 5, 6])
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[:2, [0, 2, 3, 4]] = True  # an URDU-like label set
    mask[2:, [5, 6]] = True  # a BanglaSER-like label set
    loss = masked_cross_entropy(logits, target, mask)
    loss.backward()
    assert torch.all(logits.grad[~mask] == 0)  # absent classes get no gradient
    assert torch.all(logits.grad[mask] != 0)
    # the loss is the cross-entropy over each example's own classes only
    ref = torch.stack([torch.nn.functional.cross_entropy(logits[i, mask[i]][None],
                                                         (mask[i].cumsum(0)[target[i]] - 1)[None])
                       for i in range(4)]).mean()
    assert torch.allclose(loss, ref)
    # changing an absent class's logit changes nothing
    bumped = logits.detach().clone()
    bumped[0, 7] += 50.0
    assert torch.allclose(masked_cross_entropy(bumped, target, mask), loss.detach())


def test_balanced_weights_equalise_corpora_and_classes():
    corpus = ["a"] * 10 + ["b"] * 2
    y = np.array([0] * 9 + [1] + [3, 4])
    w = balanced_weights(corpus, y)
    assert np.isclose(w[:10].sum(), w[10:].sum())
    assert np.isclose(w[:9].sum(), w[9])
    assert np.isclose(w.mean(), 1.0)


def test_attention_head_trains_with_the_house_trainer(tmp_path):
    """The attentive-statistics head is trained by the Trainer (its log and checkpoint), over two corpora with
    different label sets; on frames whose class shifts their mean the loss falls and the head learns it."""
    import json

    from avemo.training.speech_heads import HeadConfig, attn_logits, train_attn

    rng = np.random.default_rng(0)
    sets = {"a": ("happy", "sad", "angry"), "b": ("happy", "fearful")}
    corpus = ["a"] * 60 + ["b"] * 40
    y = np.array([EMOTIONS.index(sets[c][i % len(sets[c])]) for i, c in enumerate(corpus)])
    signal = 1.5 * np.eye(len(EMOTIONS), dtype=np.float32).repeat(2, axis=1)  # class k lifts dimensions 2k, 2k+1
    frames = [rng.normal(0, 1, (int(rng.integers(80, 200)), 16)).astype(np.float32) + signal[k] for k in y]
    cfg = HeadConfig(kind="attn", hidden=16, heads=2, dropout=0.0, epochs=6, batch=20, lr=1e-2, crop_s=(1.0, 2.0))
    mu, sd = np.zeros(16, np.float32), np.ones(16, np.float32)
    head = train_attn(frames, y, corpus, sets, cfg, mu, sd, out_dir=tmp_path)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == list(range(6)) and (tmp_path / "checkpoint.pt").is_file()
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    logits = attn_logits(head, frames, mu, sd)
    assert logits.shape == (100, len(EMOTIONS))
    mask = np.stack([[e in sets[c] for e in EMOTIONS] for c in corpus])
    assert (np.where(mask, logits, -np.inf).argmax(1) == y).mean() > 0.9


def test_the_calm_bias_is_fitted_on_every_class_and_shipped() -> None:
    """``fit_class_bias`` on the stored leave-one-corpus-out predictions of the corpora without calm (every calm
    answer wrong) pushes calm down, and with RAVDESS's in-corpus predictions (calm a true class) less far; the
    shipped voice.multi6 carries a negative calm bias in its head, and applied to EMOVO's stored predictions it
    cuts the calm answers (6 % of them with the three-member blend, all wrong) to under a quarter of that (none
    with its -0.96)."""
    import pandas as pd

    from avemo.models.bundles import load

    res = Path(__file__).parents[1] / "benchmarks" / "results" / "voice_multi"
    recipe = load("voice.multi6").meta["recipe"]["name"]  # the shipped recipe's stored held-out predictions
    loco = pd.read_csv(res / f"loco_probs_{recipe}.csv.gz")
    folds = pd.read_csv(res / f"loco_probs_{recipe}_ravdess_folds.csv.gz")
    calm = EMOTIONS.index("calm")

    def logp(df):
        return np.log(np.clip(df[list(EMOTIONS)].to_numpy(np.float64), 1e-12, None))

    def y(df):
        return df.label.map(EMOTIONS.index).to_numpy()

    other = loco[loco.corpus != "ravdess"]
    alone = fit_class_bias(logp(other), y(other), other.corpus.to_numpy(), calm)
    both = pd.concat([other, folds.assign(corpus="ravdess-folds")])
    with_calm = fit_class_bias(logp(both), y(both), both.corpus.to_numpy(), calm)
    assert alone < with_calm < 0
    shipped = load("voice.multi6").preprocessing.head["class_bias"]["calm"]
    assert shipped < 0
    emovo = loco[loco.corpus == "emovo"]
    z = logp(emovo)
    before = np.mean(z.argmax(1) == calm)
    z[:, calm] += shipped
    assert before > 0.05 and np.mean(z.argmax(1) == calm) < before / 4



def test_pitch_copy_moves_a_real_voice_by_the_drawn_semitones_and_keeps_its_length_and_peak(samples) -> None:
    """The ``pitch`` training copy (benchmarks/voice_crossdomain.py, ``linear_L2-4_aug_pitch``): a RAVDESS take's
    spectrum moves by the drawn number of semitones (the lag that best aligns the two mean log constant-Q spectra,
    quarter-tone bins; f0 trackers are too noisy on one short take), length and peak level kept, and the draw is
    the clip's own (seeded by its name)."""
    import librosa

    from avemo.audio.whisper_features import condition_fn, shift_pitch
    from avemo.media import read_audio

    clip = next(s for s in samples if s.corpus == "ravdess" and s.label == "neutral")
    wave = read_audio(clip.path, sample_rate=16000)
    moved, what = shift_pitch(wave, np.random.default_rng(3))
    steps = float(what.removeprefix("pitch"))
    assert 1.0 <= abs(steps) <= 4.0
    assert moved.shape == wave.shape and np.isclose(np.abs(moved).max(), np.abs(wave).max(), rtol=1e-5)

    def spectrum(x: np.ndarray) -> np.ndarray:
        c = np.abs(librosa.cqt(x, sr=16000, fmin=80, n_bins=48 * 5, bins_per_octave=48))
        v = np.log(c.mean(1) + 1e-6)
        return v - v.mean()

    a, b = spectrum(wave), spectrum(moved)
    lags = np.arange(-24, 25)
    fit = [np.dot(a[max(0, -k):len(a) - max(0, k)], b[max(0, k):len(b) - max(0, -k)]) for k in lags]
    assert abs(lags[int(np.argmax(fit))] / 4 - steps) <= 0.25, (lags[int(np.argmax(fit))] / 4, steps)
    one, two = condition_fn("pitch", clip.path.name)(wave), condition_fn("pitch", clip.path.name)(wave)
    assert np.array_equal(one, two)
