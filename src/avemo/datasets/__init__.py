"""Corpus readers and speaker-independent splits.

One module per corpus (:mod:`.ravdess`, :mod:`.cremad`, :mod:`.fer2013`, :mod:`.enterface`,
:mod:`.baum1s`, :mod:`.savee`, :mod:`.mead`, :mod:`.meld`, :mod:`.carer`, :mod:`.manifest`), each
returning a :class:`Corpus` of :class:`Sample` records plus what it left out and why (see :mod:`.base`
for the contract), and :mod:`.splits` for the folds.

>>> corpus = read_corpus("ravdess")            # $AVEMO_DATA/ravdess-speech-16k
>>> folds = ravdess_folds(corpus)              # 6 folds of 4 actors
>>> check_speaker_independent(corpus, folds, complete=True)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from avemo.config import data_root
from avemo.datasets.base import MODALITIES, Corpus, Excluded, Sample
from avemo.datasets.baum1s import read_baum1s
from avemo.datasets.carer import read_carer
from avemo.datasets.cremad import read_cremad
from avemo.datasets.enterface import read_enterface
from avemo.datasets.fer2013 import load_fer_image, read_fer2013
from avemo.datasets.manifest import read_manifest
from avemo.datasets.mead import read_mead
from avemo.datasets.meld import read_meld
from avemo.datasets.ravdess import pair_ravdess_au, read_ravdess, read_ravdess_au
from avemo.datasets.savee import read_savee
from avemo.datasets.splits import (
    Fold,
    InnerSplit,
    SplitError,
    check_speaker_independent,
    inner_split,
    predefined_split,
    ravdess_folds,
    speaker_folds,
)
from avemo.errors import DatasetError

READERS: dict[str, Callable[..., Corpus]] = {
    "ravdess": read_ravdess,
    "cremad": read_cremad,
    "fer2013": read_fer2013,
    "enterface": read_enterface,
    "baum1s": read_baum1s,
    "savee": read_savee,
    "mead": read_mead,
    "meld": read_meld,
    "carer": read_carer,
    "manifest": read_manifest,
}

#: Default folder of each corpus under :func:`avemo.config.data_root` (``$AVEMO_DATA``).
DEFAULT_DIRS: dict[str, str] = {
    "ravdess": "ravdess-speech-16k",
    "fer2013": "fer2013",
    "carer": "text-emotion-carer",
    "cremad": "crema-d",
    "enterface": "enterface05",
    "baum1s": "baum1s",
    "savee": "savee",
    "mead": "mead",
    "meld": "meld",
}

_ALIASES = {"crema-d": "cremad", "crema_d": "cremad", "fer": "fer2013", "fer-2013": "fer2013",
            "enterface05": "enterface", "enterface'05": "enterface", "baum-1s": "baum1s", "baum1": "baum1s"}


def read_corpus(name: str, root: str | Path | None = None, **kw) -> Corpus:
    """Read a corpus by name; ``root`` defaults to its folder under ``$AVEMO_DATA`` (:data:`DEFAULT_DIRS`).

    Keyword arguments go to the corpus's reader (``modalities=``, ``contempt=``, ``splits=``, ...).
    ``manifest`` has no default: pass the CSV as ``root``.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in READERS:
        raise DatasetError(name, f"unknown corpus; known: {', '.join(READERS)}")
    if root is None:
        if key not in DEFAULT_DIRS:
            raise DatasetError(name, "no default location; pass root= (the manifest CSV)")
        root = data_root() / DEFAULT_DIRS[key]
    return READERS[key](root, **kw)


__all__ = [
    "DEFAULT_DIRS", "MODALITIES", "READERS", "Corpus", "DatasetError", "Excluded", "Fold", "InnerSplit",
    "Sample", "SplitError", "check_speaker_independent", "inner_split", "load_fer_image", "pair_ravdess_au",
    "predefined_split", "ravdess_folds", "read_baum1s", "read_carer", "read_corpus", "read_cremad",
    "read_enterface", "read_fer2013", "read_manifest", "read_mead", "read_meld", "read_ravdess",
    "read_ravdess_au", "read_savee", "speaker_folds",
]
