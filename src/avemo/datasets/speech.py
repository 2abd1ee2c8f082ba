"""The shared speech corpora as one multi-corpus set, and its speaker-independent splits.

Six corpora, six languages, each contributing only the classes it has:

========== ========= ============================================== =====
corpus     language  classes                                        clips
========== ========= ============================================== =====
ravdess    English   all 8                                          1440
savee      English   7 (no calm)                                     480
emovo      Italian   7 (no calm)                                     588
casia      Mandarin  6 (no calm, no disgust)                        1200
urdu       Urdu      4 (neutral, happy, sad, angry; natural speech)  400
bangla-ext Bengali   2 (fearful, disgust)                            261
========== ========= ============================================== =====

RAVDESS is read with :func:`~avemo.datasets.ravdess.read_ravdess` (audio-only speech files of
``ravdess-speech-16k``), the five others with :func:`~avemo.datasets.manifest.read_manifest` from their
``manifest.csv`` in ``speech-extra-16k/``. A class a corpus does not have is *unknown* for its clips,
never a negative: :func:`label_sets` gives each corpus's classes, :func:`label_mask` the per-sample mask a
corpus-masked loss uses.

Splits (indices into the list of samples, checked speaker-independent):

* :func:`loco_folds`: leave one corpus out, train on the other five;
* :func:`ravdess_plus_folds`: the 6 standard RAVDESS actor folds, every other corpus on the training side.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avemo.config import data_root
from avemo.datasets.base import Sample
from avemo.datasets.manifest import read_manifest
from avemo.datasets.ravdess import read_ravdess
from avemo.datasets.splits import Fold, SplitError, check_speaker_independent, ravdess_folds
from avemo.errors import DatasetError
from avemo.labels import EMOTIONS

#: The corpora in the order of :func:`read_speech_corpora`, with their folder under ``$AVEMO_DATA``.
SPEECH_CORPORA: dict[str, str] = {
    "ravdess": "ravdess-speech-16k",
    "savee": "speech-extra-16k/savee",
    "emovo": "speech-extra-16k/emovo",
    "casia": "speech-extra-16k/casia",
    "urdu": "speech-extra-16k/urdu",
    "bangla-ext": "speech-extra-16k/bangla-ext",
}
LANGUAGES: dict[str, str] = {"ravdess": "English (North American)", "savee": "English (British)",
                             "emovo": "Italian", "casia": "Mandarin", "urdu": "Urdu", "bangla-ext": "Bengali"}


def read_speech_corpus(name: str, root: str | Path | None = None) -> list[Sample]:
    """One shared speech corpus as samples (RAVDESS: the audio-only speech files)."""
    if name not in SPEECH_CORPORA:
        raise DatasetError(name, f"not a shared speech corpus; known: {', '.join(SPEECH_CORPORA)}")
    folder = Path(root) if root is not None else data_root() / SPEECH_CORPORA[name]
    if name == "ravdess":
        corpus = read_ravdess(folder, modalities=("audio",), channels=("speech",))
    else:
        corpus = read_manifest(folder / "manifest.csv", corpus=name)
        wrong = {s.corpus for s in corpus} - {name}
        if wrong:
            raise DatasetError(folder / "manifest.csv", f"rows of other corpora {sorted(wrong)}")
    if corpus.excluded:
        raise DatasetError(folder, f"{len(corpus.excluded)} items left out, e.g. {corpus.excluded[0]}")
    return list(corpus.samples)


def read_speech_corpora(names: Sequence[str] = tuple(SPEECH_CORPORA), root: str | Path | None = None
                        ) -> list[Sample]:
    """The samples of several shared speech corpora, one list, corpus by corpus in ``names`` order.
    ``root`` is the datasets folder (default ``$AVEMO_DATA``)."""
    base = Path(root) if root is not None else data_root()
    out: list[Sample] = []
    for name in names:
        if name not in SPEECH_CORPORA:
            raise DatasetError(name, f"not a shared speech corpus; known: {', '.join(SPEECH_CORPORA)}")
        out.extend(read_speech_corpus(name, base / SPEECH_CORPORA[name]))
    return out


def label_sets(samples: Sequence[Sample]) -> dict[str, tuple[str, ...]]:
    """Each corpus's classes as found in ``samples``, in canonical order."""
    found: dict[str, set[str]] = {}
    for s in samples:
        found.setdefault(s.corpus, set()).add(s.label)
    return {c: tuple(e for e in EMOTIONS if e in labels) for c, labels in found.items()}


def label_mask(samples: Sequence[Sample], sets: dict[str, tuple[str, ...]] | None = None,
               labels: Sequence[str] = EMOTIONS) -> np.ndarray:
    """``(n, len(labels))`` bool: which classes are known (in the sample's corpus's label set) per sample."""
    sets = sets if sets is not None else label_sets(samples)
    per_corpus = {c: np.array([e in ls for e in labels]) for c, ls in sets.items()}
    return np.stack([per_corpus[s.corpus] for s in samples]) if samples else np.zeros((0, len(labels)), bool)


def loco_folds(samples: Sequence[Sample], corpora: Sequence[str] | None = None) -> list[Fold]:
    """Leave one corpus out: fold ``k`` tests every sample of the ``k``-th corpus and trains on the rest."""
    names = list(corpora) if corpora is not None else list(dict.fromkeys(s.corpus for s in samples))
    corpus = np.array([s.corpus for s in samples], dtype=object)
    all_idx = np.arange(len(samples), dtype=np.int64)
    folds = []
    for k, name in enumerate(names):
        test = corpus == name
        if not test.any():
            raise SplitError(f"no sample of corpus {name!r}")
        folds.append(Fold(k, all_idx[~test], all_idx[test],
                          tuple(sorted({samples[int(i)].speaker for i in all_idx[test]}))))
    check_speaker_independent(samples, folds)
    return folds


def ravdess_plus_folds(samples: Sequence[Sample]) -> list[Fold]:
    """The 6 RAVDESS actor folds (1-4, 5-8, ...) with every non-RAVDESS sample on each training side."""
    idx = np.array([i for i, s in enumerate(samples) if s.corpus == "ravdess"], dtype=np.int64)
    other = np.array([i for i, s in enumerate(samples) if s.corpus != "ravdess"], dtype=np.int64)
    if idx.size == 0:
        raise SplitError("no RAVDESS sample")
    folds = []
    for f in ravdess_folds([samples[int(i)] for i in idx]):
        train = np.sort(np.concatenate([idx[f.train_idx], other]))
        folds.append(Fold(f.index, train, idx[f.test_idx], f.test_speakers))
    check_speaker_independent(samples, folds)
    return folds
