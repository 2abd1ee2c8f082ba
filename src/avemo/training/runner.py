"""``avemo train`` / ``avemo evaluate``: run a recipe's protocol, then score what it predicted.

A run folder (``runs/<recipe>/`` by default) holds, per *row* of results, one ``fold_k/`` folder per
fold with ``predictions.npz`` (``test_probs``, ``test_y``, and more). A voice or features recipe
has one row (its own name); a fusion recipe has several (AU only, voice only, late fusion, learned
fusion), under ``rows/<row>/``. Evaluation turns the predictions into accuracy, macro-F1, UAR,
per-class recall and the confusion matrix per fold, their mean ± std, and PNG confusion plots;
``--publish`` also copies the JSON (and the pooled confusion PNG) to ``benchmarks/results/``,
from which ``avemo bench accuracy`` renders BENCHMARKS.md.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avemo.labels import EMOTIONS
from avemo.training import loop
from avemo.training.data import load_samples, make_folds
from avemo.training.metrics import classification_scores, plot_confusion, summarize_folds
from avemo.training.recipe import Recipe, RecipeError

RESULTS_DIR = Path("benchmarks") / "results"
#: What a fold's ``fold.json`` contributes to the results: who was tested, and every choice made on training actors.
FOLD_KEYS = ("test_speakers", "val_speakers", "train_seconds", "chosen", "au_model", "temperatures", "weights",
             "stacker", "member_val_acc", "ensemble_val_acc")


def _run_meta(recipe: Recipe, samples: Sequence, folds: Sequence) -> dict[str, Any]:
    return {"recipe": recipe.name, "kind": recipe.kind, "corpus": recipe.corpus, "n_samples": len(samples),
            "n_speakers": len({s.speaker for s in samples}), "protocol": dataclasses.asdict(recipe.protocol),
            "folds": [f.describe() for f in folds], "seed": recipe.seed,
            "commit": loop.git_commit(), "machine": loop.machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


#: kind -> the module whose ``run_folds(recipe, samples, folds, run_dir, only=, show=)`` trains it
FOLD_RUNNERS = {"voice": "avemo.training.voice", "features": "avemo.training.classic",
                "system": "avemo.training.systems", "fusion": "avemo.training.fusion"}


def train(recipe: Recipe, run_dir: Path | None = None, *, only: Sequence[int] | None = None,
          show: bool = True, bundle_dir: Path | None = None) -> Path:
    """Run the recipe's protocol; returns the run folder. Finished folds are skipped, started ones resume.
    A ``face`` recipe runs FER-2013's own holdout split (:func:`avemo.training.fer.train_face`) and, with
    ``ship.write``, writes its bundle under ``bundle_dir`` (default: the package's weights)."""
    import importlib

    from avemo.training import distributed

    run_dir = Path(run_dir or recipe.default_run_dir())
    run_dir.mkdir(parents=True, exist_ok=True)
    main = distributed.is_main()  # under torchrun only rank 0 writes
    if recipe.path and main:
        shutil.copyfile(recipe.path, run_dir / "recipe.yaml")
    if recipe.kind == "face":
        from avemo.training.fer import train_face

        train_face(recipe, run_dir, show=show, bundle_dir=bundle_dir)
        return run_dir
    samples = load_samples(recipe)
    folds = make_folds(recipe, samples)
    if main:
        loop.write_json(run_dir / "run.json", _run_meta(recipe, samples, folds))
    importlib.import_module(FOLD_RUNNERS[recipe.kind]).run_folds(recipe, samples, folds, run_dir, only=only,
                                                                  show=show)
    return run_dir


def _rows(run_dir: Path, recipe: Recipe) -> dict[str, Path]:
    rows_dir = run_dir / "rows"
    if rows_dir.is_dir():
        return {p.name: p for p in sorted(rows_dir.iterdir()) if p.is_dir()}
    return {recipe.name: run_dir}


def score_row(row_dir: Path, n_folds: int, labels: Sequence[str] = EMOTIONS,
              plots: Path | None = None, title: str = "") -> dict[str, Any]:
    """Per-fold scores and their summary for one row's predictions (every fold must be there)."""
    folds = []
    for k in range(n_folds):
        path = row_dir / f"fold_{k}" / "predictions.npz"
        if not path.is_file():
            raise RecipeError(f"{path}: missing; train this fold first (avemo train)")
        with np.load(path) as z:
            scores = classification_scores(z["test_y"], z["test_probs"].argmax(1), labels)
        info = row_dir / f"fold_{k}" / "fold.json"
        if info.is_file():
            import json

            meta = json.loads(info.read_text())
            scores.update({key: meta[key] for key in FOLD_KEYS if key in meta})
        if plots is not None:
            plot_confusion(scores["confusion"], labels, plots / f"confusion_fold{k}.png",
                           title=f"{title} fold {k}: acc {scores['accuracy']:.3f}")
        folds.append(scores)
    summary = summarize_folds(folds)
    if plots is not None:
        plot_confusion(summary["confusion"], labels, plots / "confusion_pooled.png",
                       title=f"{title}: {summary['accuracy']['mean']:.3f} ± {summary['accuracy']['std']:.3f}")
    return {"folds": folds, "summary": summary}


def evaluate(recipe: Recipe, run_dir: Path | None = None, *, publish: bool = False) -> dict[str, Any]:
    """Score every row of a trained run; writes ``results.json`` and PNGs into the run folder."""
    import json

    run_dir = Path(run_dir or recipe.default_run_dir())
    if recipe.kind == "face":
        return _evaluate_holdout(recipe, run_dir, publish)
    meta_path = run_dir / "run.json"
    if not meta_path.is_file():
        raise RecipeError(f"{run_dir}: no run here; run `avemo train {recipe.path or recipe.name}` first")
    meta = json.loads(meta_path.read_text())
    n_folds = len(meta["folds"])
    rows = {}
    for name, row_dir in _rows(run_dir, recipe).items():
        rows[name] = score_row(row_dir, n_folds, plots=run_dir / "plots" / name, title=name)
        extra = row_dir / "row.json"
        if extra.is_file():
            rows[name]["about"] = json.loads(extra.read_text())
    results = {**meta, "rows": rows, "command": recipe.command_line,
               "evaluated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "evaluated_commit": loop.git_commit(), "description": recipe.description}
    loop.write_json(run_dir / "results.json", results)
    if publish:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        loop.write_json(RESULTS_DIR / f"{recipe.name}.json", results)
        for name in rows:
            shutil.copyfile(run_dir / "plots" / name / "confusion_pooled.png", RESULTS_DIR / f"{name}_confusion.png")
    return results


def _evaluate_holdout(recipe: Recipe, run_dir: Path, publish: bool) -> dict[str, Any]:
    """A face recipe scored itself when it finished (PrivateTest once): its ``results.json``, as rows."""
    import json

    path = run_dir / "results.json"
    if not path.is_file():
        raise RecipeError(f"{run_dir}: no finished run here; run `avemo train {recipe.path or recipe.name}` first")
    results = json.loads(path.read_text())
    results["holdout"] = {split: results[split] for split in ("public_test", "private_test")}
    if publish:
        loop.write_json(RESULTS_DIR / "training" / f"{recipe.name}.json", results)
    return results


def format_results(results: dict[str, Any]) -> str:
    """A short text table: one line per row (per split for a holdout), then per-fold accuracies."""
    if "holdout" in results:
        return "\n".join(f"{split:14s} acc {r['accuracy']:.3f}  F1 {r['macro_f1']:.3f}  UAR {r['uar']:.3f}"
                         for split, r in results["holdout"].items())
    lines = []
    for name, row in results["rows"].items():
        s = row["summary"]
        per = " ".join(f"{a:.3f}" for a in s["accuracy"]["per_fold"])
        lines.append(f"{name:28s} acc {s['accuracy']['mean']:.3f} ± {s['accuracy']['std']:.3f}  "
                     f"F1 {s['macro_f1']['mean']:.3f}  UAR {s['uar']['mean']:.3f}  folds [{per}]")
    return "\n".join(lines)
