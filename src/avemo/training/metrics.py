"""Classification scores for one fold and their summary over folds."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, recall_score


def classification_scores(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, unweighted average recall (UAR), per-class recall and the confusion matrix.

    ``y_true``/``y_pred`` are indices into ``labels``. Classes absent from ``y_true`` are left out of UAR.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(f"need equal, non-empty y_true and y_pred, got {y_true.shape} and {y_pred.shape}")
    ids = list(range(len(labels)))
    present = sorted(set(y_true.tolist()))
    recall = recall_score(y_true, y_pred, labels=ids, average=None, zero_division=0)
    return {
        "n": int(y_true.size),
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "uar": float(np.mean([recall[i] for i in present])),
        "per_class_recall": {labels[i]: float(recall[i]) for i in present},
        "confusion": confusion_matrix(y_true, y_pred, labels=ids).tolist(),
        "labels": list(labels),
    }


def summarize_folds(folds: Sequence[dict], keys: Sequence[str] = ("accuracy", "macro_f1", "uar")) -> dict:
    """Mean and (population) standard deviation of each score over folds, plus the pooled confusion."""
    out: dict = {"folds": len(folds)}
    for key in keys:
        values = np.array([f[key] for f in folds], dtype=np.float64)
        out[key] = {"mean": float(values.mean()), "std": float(values.std()), "per_fold": values.tolist()}
    if folds and "confusion" in folds[0]:
        out["confusion"] = np.sum([np.asarray(f["confusion"]) for f in folds], axis=0).tolist()
        out["labels"] = folds[0]["labels"]
    return out


def plot_confusion(confusion: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path,
                   title: str = "", columns: Sequence[str] | None = None) -> Path:
    """Write a row-normalised confusion matrix, with counts, as a PNG (rows ``labels``; columns ``columns``,
    default the same)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion, dtype=np.float64)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    columns = list(labels) if columns is None else list(columns)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(columns), 0.8 + 0.7 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class confidence in ``bins`` equal-width bins."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    err = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            err += inside.mean() * abs(float((pred[inside] == y[inside]).mean()) - float(conf[inside].mean()))
    return float(err)
