"""The canonical emotion taxonomy and each corpus's explicit mapping onto it.

Canonical classes are RAVDESS's eight (``neutral calm happy sad angry fearful disgust surprised``).
Classes a corpus has that the taxonomy lacks (contempt, boredom, love, ...) map to ``None``: the
readers leave such samples out and count them, never relabel them silently. ``contempt="disgust"``
is the one documented merge on offer. Corpora without *calm* simply never produce it; to compare a
7-class model with RAVDESS, :func:`collapse_calm` folds calm into neutral, as is common practice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

EMOTIONS: tuple[str, ...] = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
#: The seven classes shared by most corpora (no calm): FER-2013, MELD, SAVEE, MEAD less contempt, ...
BASIC7: tuple[str, ...] = ("neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised")

#: One colour per class wherever avemo draws emotions (the timeline and photo figures, annotated videos, the
#: ``avemo serve`` page, whose ``app.js`` repeats it): hues that follow the emotion (angry red, happy yellow,
#: sad blue, neutral grey).
EMOTION_COLORS: dict[str, str] = {
    "neutral": "#8c8c8c", "calm": "#17becf", "happy": "#f2b705", "sad": "#1f77b4",
    "angry": "#d62728", "fearful": "#9467bd", "disgust": "#2ca02c", "surprised": "#ff7f0e",
}


def emotion_color(name: str) -> str:
    """:data:`EMOTION_COLORS` of ``name`` (grey for a name it lacks), as ``#rrggbb``."""
    return EMOTION_COLORS.get(name, "#7f7f7f")


def emotion_rgb(name: str) -> tuple[int, int, int]:
    """:func:`emotion_color` as an RGB triple."""
    h = emotion_color(name)
    return int(h[1:3], 16), int(h[3:5], 16), int(h[5:7], 16)


#: Valence and arousal in [-1, 1] for each canonical class (circumplex placements, Russell 1980).
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "neutral": (0.0, 0.0),
    "calm": (0.3, -0.6),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.4),
    "angry": (-0.6, 0.8),
    "fearful": (-0.6, 0.7),
    "disgust": (-0.7, 0.3),
    "surprised": (0.3, 0.8),
}

ContemptPolicy = Literal["drop", "disgust"]

_MAPS: dict[str, dict[str, str | None]] = {
    "ravdess": {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                "06": "fearful", "07": "disgust", "08": "surprised"},
    "cremad": {"ANG": "angry", "DIS": "disgust", "FEA": "fearful", "HAP": "happy", "NEU": "neutral",
               "SAD": "sad"},
    # folder names of the image release, and the original CSV's integer codes
    "fer2013": {"angry": "angry", "disgust": "disgust", "fear": "fearful", "happy": "happy",
                "neutral": "neutral", "sad": "sad", "surprise": "surprised",
                "0": "angry", "1": "disgust", "2": "fearful", "3": "happy", "4": "sad", "5": "surprised",
                "6": "neutral"},
    # eNTERFACE'05 folder names ("anger", ...) and file-name codes ("an", ...)
    "enterface": {"anger": "angry", "disgust": "disgust", "fear": "fearful", "happiness": "happy",
                  "sadness": "sad", "surprise": "surprised", "an": "angry", "di": "disgust", "fe": "fearful",
                  "ha": "happy", "sa": "sad", "su": "surprised"},
    "baum1s": {"anger": "angry", "disgust": "disgust", "fear": "fearful", "happiness": "happy",
               "sadness": "sad", "surprise": "surprised", "neutral": "neutral", "contempt": "contempt",
               "boredom": None, "thinking": None, "concentrating": None, "bothered": None, "unsure": None,
               "interest": None},
    "savee": {"a": "angry", "d": "disgust", "f": "fearful", "h": "happy", "n": "neutral", "sa": "sad",
              "su": "surprised"},
    "mead": {"angry": "angry", "contempt": "contempt", "disgusted": "disgust", "fear": "fearful",
             "happy": "happy", "neutral": "neutral", "sad": "sad", "surprised": "surprised"},
    "meld": {"anger": "angry", "disgust": "disgust", "fear": "fearful", "joy": "happy", "neutral": "neutral",
             "sadness": "sad", "surprise": "surprised"},
    "carer": {"sadness": "sad", "joy": "happy", "love": None, "anger": "angry", "fear": "fearful",
              "surprise": "surprised"},
}

CORPORA: tuple[str, ...] = tuple(_MAPS)


def corpus_labels(corpus: str) -> tuple[str, ...]:
    """The canonical classes a corpus can produce, in canonical order (contempt dropped)."""
    present = {v for v in _mapping(corpus).values() if v in EMOTIONS}
    return tuple(e for e in EMOTIONS if e in present)


def to_canonical(corpus: str, raw: str, *, contempt: ContemptPolicy = "drop") -> str | None:
    """Map one corpus label to the canonical taxonomy; ``None`` means "not in the taxonomy, leave out".

    Raises ``KeyError`` naming the corpus for a label the corpus does not have.
    """
    mapping = _mapping(corpus)
    key = raw if raw in mapping else raw.lower()
    if key not in mapping:
        raise KeyError(f"{corpus}: unknown emotion label {raw!r} (known: {sorted(mapping)})")
    value = mapping[key]
    if value == "contempt":
        return "disgust" if contempt == "disgust" else None
    return value


def _mapping(corpus: str) -> dict[str, str | None]:
    try:
        return _MAPS[corpus.lower()]
    except KeyError:
        raise KeyError(f"unknown corpus {corpus!r} (known: {', '.join(_MAPS)})") from None


def index(labels: Sequence[str], names: Iterable[str]) -> np.ndarray:
    """Integer indices of ``names`` in ``labels``."""
    lookup = {name: i for i, name in enumerate(labels)}
    return np.array([lookup[n] for n in names], dtype=np.int64)


def collapse_calm(names: Iterable[str]) -> list[str]:
    """Fold calm into neutral, for comparing with models that have no calm class."""
    return ["neutral" if n == "calm" else n for n in names]


def project_probs(probs: np.ndarray, source: Sequence[str], target: Sequence[str] = EMOTIONS) -> np.ndarray:
    """Re-express probabilities over ``source`` labels on ``target`` labels (absent classes get 0)."""
    probs = np.asarray(probs, dtype=np.float32)
    out = np.zeros(probs.shape[:-1] + (len(target),), dtype=np.float32)
    for j, name in enumerate(source):
        if name in target:
            out[..., target.index(name)] += probs[..., j]
    return out


def similarity_matrix(labels: Sequence[str] = EMOTIONS) -> np.ndarray:
    """Emotion similarity in [0, 1] from valence-arousal distance (1 = same place on the circumplex)."""
    va = np.array([VALENCE_AROUSAL[name] for name in labels], dtype=np.float32)
    dist = np.linalg.norm(va[:, None, :] - va[None, :, :], axis=-1)
    return 1.0 - dist / dist.max()
