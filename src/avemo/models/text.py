"""Text emotion features and the linear classifier's runtime, without torch.

Sentences are cleaned (:func:`clean_text`), turned into word n-gram counts, then sublinear TF-IDF with
L2 normalisation and a linear layer. The counts are either hashed (``embedder="tfidf"``: scikit-learn's
stateless :class:`~sklearn.feature_extraction.text.HashingVectorizer`, no vocabulary stored, some words
share a column) or over the fitted vocabulary (``embedder="words"``: one column per word seen in
training, the vocabulary shipped beside the weights). The fitting and the torch module are in
:mod:`avemo.models.blocks.text`; :class:`TextLinearModel` is what a text bundle runs at analysis time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

__all__ = ["TextLinearModel", "clean_text", "hashed_counts", "tfidf", "vocabulary_counts"]

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"[@#]\w+")
_APOSTROPHE = re.compile(r"['\u2019]")
_NON_WORD = re.compile(r"[^a-z ]+")
_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Lower-case, drop URLs and @mentions/#tags, join words at apostrophes (``didn't`` -> ``didnt``, as
    CARER writes them), keep letters, squeeze spaces."""
    t = _APOSTROPHE.sub("", _MENTION.sub(" ", _URL.sub(" ", text.lower())))
    return _SPACES.sub(" ", _NON_WORD.sub(" ", t)).strip()


def hashed_counts(texts: Sequence[str], *, n_features: int, ngram_max: int):
    """Sentences -> sparse ``(N, n_features)`` word 1..``ngram_max``-gram counts (scipy CSR)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    hasher = HashingVectorizer(n_features=n_features, ngram_range=(1, ngram_max), alternate_sign=False,
                               norm=None, preprocessor=clean_text)
    return hasher.transform(list(texts))


def vocabulary_counts(texts: Sequence[str], *, vocabulary: Sequence[str], ngram_max: int):
    """Sentences -> sparse ``(N, len(vocabulary))`` counts of the vocabulary's word 1..``ngram_max``-grams."""
    from sklearn.feature_extraction.text import CountVectorizer

    counter = CountVectorizer(vocabulary={w: i for i, w in enumerate(vocabulary)}, ngram_range=(1, ngram_max),
                              preprocessor=clean_text)
    return counter.transform(list(texts))


def tfidf(counts, idf: np.ndarray) -> np.ndarray:
    """Counts (dense or CSR) -> sublinear TF-IDF rows with unit L2 norm (dense float32)."""
    x = counts.toarray() if hasattr(counts, "toarray") else np.asarray(counts)
    x = x.astype(np.float32)
    tf = np.where(x > 0, 1.0 + np.log(np.maximum(x, 1e-12)), 0.0) * idf
    norm = np.linalg.norm(tf, axis=-1, keepdims=True)
    return (tf / np.maximum(norm, 1e-12)).astype(np.float32)


class TextLinearModel:
    """Sentences -> logits ``(N, K)``: counts (hashed, or over ``vocabulary`` when given), TF-IDF with the
    fitted ``idf``, then ``x @ weight.T + bias``."""

    def __init__(self, *, idf: np.ndarray, weight: np.ndarray, bias: np.ndarray, n_features: int,
                 ngram_max: int, vocabulary: Sequence[str] | None = None) -> None:
        self.idf, self.weight, self.bias = (np.asarray(a, dtype=np.float32) for a in (idf, weight, bias))
        self.n_features, self.ngram_max = int(n_features), int(ngram_max)
        self.vocabulary = None if vocabulary is None else tuple(vocabulary)
        if self.vocabulary is not None and len(self.vocabulary) != self.n_features:
            raise ValueError(f"{len(self.vocabulary)} vocabulary entries for {self.n_features} features")

    def counts(self, texts: Sequence[str]):
        """Sentences -> sparse counts ``(N, n_features)``."""
        if self.vocabulary is not None:
            return vocabulary_counts(texts, vocabulary=self.vocabulary, ngram_max=self.ngram_max)
        return hashed_counts(texts, n_features=self.n_features, ngram_max=self.ngram_max)

    def __call__(self, texts: Sequence[str], *, chunk: int = 256) -> np.ndarray:
        texts = list(texts)
        out = [tfidf(self.counts(texts[i:i + chunk]), self.idf) @ self.weight.T + self.bias
               for i in range(0, len(texts), chunk)]
        return np.concatenate(out) if out else np.zeros((0, len(self.bias)), dtype=np.float32)
