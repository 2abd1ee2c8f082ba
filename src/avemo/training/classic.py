"""The features runner: classical classifiers on clip-level features, chosen on training speakers only.

Every candidate (``models:`` in the recipe, each with a parameter grid) is scored by a grouped inner
cross-validation over the training speakers of the fold (speakers never straddle an inner split);
the best is refitted on all training speakers and predicts the test speakers. Features are
standardised inside the pipeline, so test statistics never leak into the scaler.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avemo.training import loop
from avemo.training.data import FEATURE_SETS, Fold, labels_of
from avemo.training.recipe import Recipe, RecipeError

#: Default candidates for a features recipe without a ``models:`` section.
DEFAULT_MODELS: list[dict[str, Any]] = [
    {"name": "logreg", "grid": {"C": [0.01, 0.1, 1.0, 10.0]}},
]


def make_estimator(name: str, params: dict[str, Any] | None = None, seed: int = 0):
    """A scikit-learn pipeline (standardiser + classifier) with ``predict_proba``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    params = dict(params or {})
    if name == "logreg":
        clf = LogisticRegression(max_iter=3000, **params)
    elif name == "linear_svm":
        clf = SVC(kernel="linear", probability=True, random_state=seed, **params)
    elif name == "rbf_svm":
        clf = SVC(kernel="rbf", probability=True, random_state=seed, **params)
    elif name == "mlp":
        hidden = params.pop("hidden", 64)
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=2000, early_stopping=False,
                            random_state=seed, **params)
    elif name == "hgb":
        clf = HistGradientBoostingClassifier(random_state=seed, **params)
    else:
        raise RecipeError(f"unknown classifier {name!r} (logreg, linear_svm, rbf_svm, mlp, hgb)")
    return make_pipeline(StandardScaler(), clf)


def candidates(recipe: Recipe) -> list[dict[str, Any]]:
    """The recipe's ``models:`` as ``{"name", "grid"}`` dicts (empty when it names none)."""
    return [{"name": c.name, "grid": {k: list(v) for k, v in c.grid.items()}} for c in recipe.models]


def _grid(grid: dict[str, list]) -> list[dict[str, Any]]:
    from sklearn.model_selection import ParameterGrid

    return list(ParameterGrid(grid or {}))


def inner_splits(groups: np.ndarray, n_splits: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped splits (whole speakers) of a training set."""
    from sklearn.model_selection import GroupKFold

    n = min(n_splits, len(set(groups.tolist())))
    return list(GroupKFold(n_splits=n).split(np.zeros(len(groups)), groups=groups))


def oof_probs(name: str, params: dict[str, Any], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
              n_classes: int, seed: int = 0, n_splits: int = 5) -> np.ndarray:
    """Out-of-fold class probabilities (n, n_classes) from a grouped inner CV."""
    out = np.zeros((len(y), n_classes))
    for tr, va in inner_splits(groups, n_splits):
        est = make_estimator(name, params, seed).fit(X[tr], y[tr])
        out[va] = full_probs(est, X[va], n_classes)
    return out


def full_probs(est, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` laid out on all ``n_classes`` columns (classes absent in training get 0)."""
    p = est.predict_proba(X)
    out = np.zeros((len(X), n_classes))
    out[:, est.classes_] = p
    return out


def select(candidates: Sequence[dict[str, Any]], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
           n_classes: int, seed: int = 0) -> dict[str, Any]:
    """The candidate and parameters with the best grouped inner-CV accuracy, and every score."""
    table = []
    for cand in candidates:
        for params in _grid(cand.get("grid") or {}):
            p = oof_probs(cand["name"], params, X, y, groups, n_classes, seed)
            table.append({"name": cand["name"], "params": params, "inner_acc": float((p.argmax(1) == y).mean()),
                          "oof": p})
    best = max(table, key=lambda r: r["inner_acc"])
    return {"name": best["name"], "params": best["params"], "inner_acc": best["inner_acc"], "oof": best["oof"],
            "table": [{k: v for k, v in r.items() if k != "oof"} for r in table]}


def run_folds(recipe: Recipe, samples: Sequence, folds: Sequence[Fold], run_dir: Path,
              only: Sequence[int] | None = None, show: bool = True) -> list[Path]:
    """Select, refit and predict each fold; writes ``fold_k/predictions.npz`` and ``fold_k/fold.json``."""
    from avemo.labels import EMOTIONS

    name = recipe.features.set
    if name not in FEATURE_SETS:
        raise RecipeError(f"{recipe.path}: features.set must be one of {sorted(FEATURE_SETS)}, got {name!r}")
    timer = loop.Timer()
    X = FEATURE_SETS[name](samples)
    feature_seconds = timer.seconds
    y = labels_of(samples)
    groups = np.array([s.speaker for s in samples])
    chosen_from = candidates(recipe) or DEFAULT_MODELS
    written = []
    with loop.progress(show) as bar:
        task = bar.add_task(f"{recipe.name}: folds", total=len(folds))
        for fold in folds:
            if only is not None and fold.index not in only:
                continue
            out = run_dir / f"fold_{fold.index}"
            timer = loop.Timer()
            tr = fold.outer_train
            choice = select(chosen_from, X[tr], y[tr], groups[tr], len(EMOTIONS), recipe.seed)
            est = make_estimator(choice["name"], choice["params"], recipe.seed).fit(X[tr], y[tr])
            probs = full_probs(est, X[fold.test], len(EMOTIONS))
            out.mkdir(parents=True, exist_ok=True)
            np.savez(out / "predictions.npz", test_probs=probs, test_y=y[fold.test], test_idx=fold.test)
            loop.write_json(out / "fold.json", {**fold.describe(), "chosen": {k: choice[k] for k in
                                                ("name", "params", "inner_acc")}, "candidates": choice["table"],
                                                "train_seconds": timer.seconds})
            bar.update(task, advance=1)
            bar.console.log(f"fold {fold.index}: {choice['name']} {json.dumps(choice['params'])} "
                            f"inner {choice['inner_acc']:.3f} test {(probs.argmax(1) == y[fold.test]).mean():.3f}")
            written.append(out / "predictions.npz")
    loop.write_json(run_dir / "row.json", {"features": name, "n_features": int(X.shape[1]),
                                           "feature_seconds": feature_seconds})
    return written
