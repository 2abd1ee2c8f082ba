"""The text emotion classifier as a registered architecture (``text``): word n-gram TF-IDF (hashed, or over
the fitted vocabulary) and a linear layer fitted with scikit-learn
(:class:`avemo.models.blocks.text.TextEmotionClassifier`); a text bundle runs it without torch
(:class:`avemo.models.text.TextLinearModel`)."""

from __future__ import annotations

from typing import Any

from avemo.models.blocks.text import TextEmotionClassifier
from avemo.models.registry import register_model


@register_model("text", kind="text", modalities=("text",))
def text(**kwargs: Any) -> TextEmotionClassifier:
    """The text emotion classifier (keyword arguments: labels, embedder, n_features, ngram_max)."""
    return TextEmotionClassifier(**kwargs)
