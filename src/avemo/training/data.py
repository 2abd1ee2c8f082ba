"""What a recipe trains on: the corpus samples, the protocol's folds, and cached features.

Folds come from the corpus's speaker partition (:mod:`avemo.datasets.splits`), never from a random
split of utterances; each fold also carries an *inner* validation set of training speakers, where
every choice (epochs, temperatures, fusion weights, hyper-parameters) is made.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import DatasetError
from avemo.labels import EMOTIONS, index
from avemo.training.recipe import Features, Recipe, RecipeError


@dataclass(frozen=True)
class Fold:
    """Indices into the sample list: ``train`` (inner training speakers), ``val`` (inner validation
    speakers, also training speakers of the outer fold) and ``test`` (the held-out speakers)."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    test_speakers: tuple[str, ...]
    val_speakers: tuple[str, ...]

    @property
    def outer_train(self) -> np.ndarray:
        """Every training index of the outer fold (inner train + inner validation)."""
        return np.sort(np.concatenate([self.train, self.val]))

    def describe(self) -> dict[str, Any]:
        return {"fold": self.index, "test_speakers": list(self.test_speakers),
                "val_speakers": list(self.val_speakers), "n_train": int(self.train.size),
                "n_val": int(self.val.size), "n_test": int(self.test.size)}


def _actor(speaker: str) -> int:
    return int(speaker.split(":")[-1])


def load_samples(recipe: Recipe) -> list:
    """The recipe's samples: its corpus, optionally limited (``data.speakers``, ``data.per_speaker``)."""
    from avemo.datasets import read_corpus

    data = recipe.data
    kwargs = {"root": data.root} if data.root else {}
    samples = list(read_corpus(recipe.corpus, **kwargs))
    if not samples:
        raise DatasetError(recipe.corpus, "no samples")
    if data.speakers:
        wanted = {int(s) for s in data.speakers}
        samples = [s for s in samples if _actor(s.speaker) in wanted]
    if data.per_speaker:
        rng = np.random.default_rng(recipe.seed)
        keep: list = []
        for spk in sorted({s.speaker for s in samples}):
            own = [s for s in samples if s.speaker == spk]
            pick = rng.choice(len(own), size=min(int(data.per_speaker), len(own)), replace=False)
            keep += [own[i] for i in sorted(pick)]
        samples = keep
    return sorted(samples, key=lambda s: str(s.path))


def labels_of(samples: Sequence) -> np.ndarray:
    return index(EMOTIONS, [s.label for s in samples])


def _inner(samples: Sequence, train_idx: np.ndarray, n_val_speakers: int, seed: int, fold: int
           ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Split a fold's training indices by speaker: ``n_val_speakers`` speakers (half of each sex
    where the corpus codes sex by actor parity, as RAVDESS does) become the inner validation set."""
    speakers = sorted({samples[i].speaker for i in train_idx}, key=_actor)
    if n_val_speakers <= 0 or len(speakers) < 2:
        return np.asarray(train_idx), np.array([], dtype=np.int64), ()
    rng = np.random.default_rng([seed, fold])
    odd = [s for s in speakers if _actor(s) % 2]
    even = [s for s in speakers if not _actor(s) % 2]
    n_odd = min(len(odd), (n_val_speakers + 1) // 2)
    n_even = min(len(even), n_val_speakers - n_odd)
    val = set(rng.choice(odd, n_odd, replace=False).tolist() if n_odd else [])
    val |= set(rng.choice(even, n_even, replace=False).tolist() if n_even else [])
    if len(val) >= len(speakers):
        val = set(list(val)[:-1])
    tr = np.array([i for i in train_idx if samples[i].speaker not in val], dtype=np.int64)
    va = np.array([i for i in train_idx if samples[i].speaker in val], dtype=np.int64)
    return tr, va, tuple(sorted(val, key=_actor))


def make_folds(recipe: Recipe, samples: Sequence) -> list[Fold]:
    """The protocol's folds: ``ravdess6`` (6 folds of 4 actors, each actor tested once) or ``holdout``
    (``protocol.test_speakers`` held out). The inner validation speakers depend on ``protocol.split_seed``
    (default 0) only, so recipes with different model seeds share them (and can be ensembled)."""
    proto = recipe.protocol
    n_val = proto.val_speakers
    if proto.name == "ravdess6":
        from avemo.datasets.splits import ravdess_folds

        outer = [(np.asarray(f.train_idx), np.asarray(f.test_idx)) for f in ravdess_folds(samples)]
    else:
        test = {int(s) for s in proto.test_speakers}
        if not test:
            raise RecipeError(f"{recipe.path}: a holdout protocol needs test_speakers")
        is_test = np.array([_actor(s.speaker) in test for s in samples])
        outer = [(np.flatnonzero(~is_test), np.flatnonzero(is_test))]
    folds = []
    for k, (train_idx, test_idx) in enumerate(outer):
        train_spk = {samples[i].speaker for i in train_idx}
        test_spk = {samples[i].speaker for i in test_idx}
        if train_spk & test_spk:
            raise RecipeError(f"fold {k}: speakers {sorted(train_spk & test_spk)} on both sides")
        tr, va, val_spk = _inner(samples, train_idx, n_val, proto.split_seed, k)
        folds.append(Fold(k, tr, va, np.asarray(test_idx), tuple(sorted(test_spk, key=_actor)), val_spk))
    return folds


def cached(path: str | Path, namespace: str, settings: dict[str, Any],
           compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays for one file from the content-keyed feature cache (computed once)."""
    from avemo.cache import FeatureCache

    return FeatureCache().get_or_compute(Path(path), namespace, settings, compute)


# -- features ------------------------------------------------------------------------------------------

def voice_settings(features: Features) -> dict[str, Any]:
    """The log-mel settings of a recipe's features, complete (MelConfig fields and trimming)."""
    from avemo.audio import MelConfig

    return {"mel": MelConfig.from_dict(dict(features.mel)).to_dict(), "trim_db": float(features.trim_db)}


def trim_silence(wave: np.ndarray, top_db: float) -> np.ndarray:
    """The wave without leading and trailing stretches quieter than ``top_db`` below its peak."""
    if top_db <= 0 or wave.size == 0:
        return wave
    import librosa

    trimmed, _ = librosa.effects.trim(wave, top_db=top_db, frame_length=400, hop_length=160)
    return trimmed if trimmed.size >= 1600 else wave


def voice_logmels(samples: Sequence, features: Features) -> list[np.ndarray]:
    """Log-mels ``(n_mels, frames)`` of the (trimmed) speech of every sample, cached on disk."""
    from avemo.audio import MelConfig, log_mel
    from avemo.media import read_audio

    settings = voice_settings(features)
    cfg = MelConfig.from_dict(settings["mel"])

    def one(path: Path) -> np.ndarray:
        def compute() -> dict[str, np.ndarray]:
            wave = trim_silence(read_audio(path, sample_rate=cfg.sample_rate), settings["trim_db"])
            return {"logmel": log_mel(wave, cfg).astype(np.float32)}

        return cached(path, "voice-logmel", settings, compute)["logmel"]

    return [one(s.path) for s in samples]


def au_features(samples: Sequence, csv: str | Path | None = None) -> np.ndarray:
    """The (n, 35) clip-level facial action units of the RAVDESS takes of ``samples`` (same order)."""
    from avemo.config import data_root
    from avemo.datasets import pair_ravdess_au, read_ravdess_au

    table = read_ravdess_au(csv or data_root() / "ravdess-au" / "au35_clip_means.csv")
    _, feats = pair_ravdess_au(list(samples), table)
    return np.asarray(feats, dtype=np.float32)


def egemaps_features(samples: Sequence) -> np.ndarray:
    """The 88 eGeMAPS v02 functionals (openSMILE) of each sample, cached; needs the ``baselines`` extra."""
    try:
        import opensmile
    except ImportError:
        raise RecipeError("eGeMAPS needs openSMILE: pip install 'avemo[baselines]' "
                          "(non-commercial licence)") from None
    from avemo.media import read_audio

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.Functionals)
    settings = {"set": "eGeMAPSv02", "level": "functionals", "opensmile": opensmile.__version__,
                "sample_rate": 16000}

    def one(path: Path) -> np.ndarray:
        def compute() -> dict[str, np.ndarray]:
            wave = read_audio(path, sample_rate=16000)
            return {"egemaps": smile.process_signal(wave, 16000).to_numpy(np.float32).reshape(-1)}

        return cached(path, "egemaps", settings, compute)["egemaps"]

    return np.stack([one(s.path) for s in samples])


def librosa_functionals(samples: Sequence) -> np.ndarray:
    """Mean and std of 20 MFCCs, their deltas, RMS, zero-crossing rate, spectral centroid and f0
    (pYIN): a librosa stand-in for eGeMAPS where openSMILE is not installed."""
    import librosa

    from avemo.media import read_audio

    settings = {"set": "librosa-functionals-v1", "sample_rate": 16000}

    def one(path: Path) -> np.ndarray:
        def compute() -> dict[str, np.ndarray]:
            y = read_audio(path, sample_rate=16000)
            mfcc = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=20, n_fft=512, hop_length=160)
            d = librosa.feature.delta(mfcc)
            rms = librosa.feature.rms(y=y, frame_length=512, hop_length=160)
            zcr = librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=160)
            cen = librosa.feature.spectral_centroid(y=y, sr=16000, n_fft=512, hop_length=160)
            f0, voiced, _ = librosa.pyin(y, fmin=60, fmax=500, sr=16000, frame_length=1024, hop_length=160)
            f0 = f0[voiced] if np.any(voiced) else np.zeros(1)
            rows = np.concatenate([mfcc, d, rms, zcr, cen])
            vec = np.concatenate([rows.mean(1), rows.std(1), [np.mean(f0), np.std(f0), np.mean(voiced)]])
            return {"functionals": vec.astype(np.float32)}

        return cached(path, "librosa-functionals", settings, compute)["functionals"]

    return np.stack([one(s.path) for s in samples])


FEATURE_SETS: dict[str, Callable[[Sequence], np.ndarray]] = {
    "au35": au_features,
    "egemaps": egemaps_features,
    "librosa": librosa_functionals,
}
