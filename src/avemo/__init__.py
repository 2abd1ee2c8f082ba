"""avemo: audio-visual emotion recognition — face, voice and fused emotions over time.

Heavy parts load on first use, so ``import avemo`` stays fast.
"""

from __future__ import annotations

from typing import Any

from avemo.errors import AvemoError, DatasetError, MediaError, ModelError, RecipeError, SplitError
from avemo.labels import EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "AvemoError", "DatasetError", "MediaError", "ModelError", "RecipeError", "SplitError",
           "analyze", "list_models", "load", "score"]


def analyze(path_or_paths: Any, **settings: Any) -> Any:
    """Analyse a video, audio file or image (or a list of them) into an
    :class:`~avemo.inference.result.EmotionTimeline`: see :func:`avemo.inference.analyzer.analyze` for the
    settings. Runs on onnxruntime; torch is not imported."""
    from avemo.inference.analyzer import analyze as _analyze

    return _analyze(path_or_paths, **settings)


def list_models(pattern: str = "*", *, pretrained: bool = False, kind: str | None = None) -> list[str]:
    """Registered architectures and shipped bundles matching ``pattern`` (imports torch, for the architectures)."""
    from avemo.models.registry import list_models as _list

    return _list(pattern, pretrained=pretrained, kind=kind)


def load(name: str) -> Any:
    """A shipped model bundle by name (``avemo.list_models(pretrained=True)``) or a bundle folder: weights, labels,
    sample rate and preprocessing in one checked, frozen object (no torch import)."""
    from avemo.models.bundles import load as _load

    return _load(name)


def score(data: Any, out: Any = None, *, corpus: str | None = None, label_names: str | None = None,
          kind: str | None = None, split: str | None = None, limit: int | None = None, seed: int = 0,
          force: bool = False, models: Any = "default", **settings: Any) -> Any:
    """Score the models on labelled recordings (what ``avemo score`` does): ``data`` is a manifest CSV
    (``path,label``), a corpus folder (``corpus`` names its layout) or a corpus name under ``$AVEMO_DATA``; the
    rows, ``metrics.json`` and confusion figures go to ``out`` (default ``avemo-score/<name>``). Returns the
    :class:`~avemo.inference.scoring.ScoreReport` (its ``metrics``: per modality, ``within`` the data's classes and
    ``open`` over all eight). ``settings`` go to the analyzer (``text=True``, ``fps=``, ...)."""
    from pathlib import Path

    from avemo.inference.analyzer import Analyzer
    from avemo.inference.scoring import default_out, labelled_samples, read_labelled
    from avemo.inference.scoring import score as _score

    samples = labelled_samples(read_labelled(data, corpus, label_names), kind=kind, split=split, limit=limit,
                               seed=seed)
    return _score(samples, Analyzer(models, **settings), Path(out) if out else default_out(data, corpus), force=force)
