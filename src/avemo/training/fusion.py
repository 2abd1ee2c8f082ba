"""The fusion runner: facial action units + voice on the same RAVDESS takes and the same folds.

Rows (each scored on the outer test actors of every fold):

* ``au_only``        — the AU classifier chosen by grouped inner CV on the 20 training actors, refitted on them;
* ``voice_only``     — the voice run's predictions (its model saw the 16 inner-training actors);
* ``late_fusion``    — per-modality temperature scaling, then a weighted log-linear pool
  (:class:`avemo.models.fusion.calibrated.CalibratedLateFusion`); the voice temperature is fitted on the
  voice model's inner-validation actors, the AU temperature on the AU model's out-of-fold
  predictions over the training actors (grouped inner CV), and the two weights on the
  inner-validation actors, where both modalities' predictions are held out;
* ``learned_fusion`` — stacking, trained on the inner-validation actors (held-out predictions of both
  modalities): a class-wise weighted pool (:class:`ClasswisePool`) or a logistic regression over both
  modalities' calibrated log-probabilities (with or without the standardised AU features), the form and
  its regularisation chosen by leave-one-actor-out CV among those actors.

No choice looks at the outer test actors.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avemo.labels import EMOTIONS
from avemo.training import loop
from avemo.training.classic import candidates, make_estimator, select
from avemo.training.data import Fold, au_features, labels_of
from avemo.training.recipe import Recipe, RecipeError

ROWS = {
    "au_only": "Facial action units only (OpenFace AU35 clip means), classifier chosen on training actors",
    "voice_only": "Voice model only: the voice recipes' CNNs (several seeds: averaged log-probabilities)",
    "late_fusion": "Late fusion: temperature-scaled AU and voice probabilities, log-linear pool, "
                   "weights fitted on held-out training actors",
    "learned_fusion": "Learned fusion (stacking) trained on held-out training actors: class-wise weighted "
                      "pool or logistic regression over calibrated log-probabilities (+ AU features), "
                      "chosen by leave-one-actor-out CV",
}


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logp: np.ndarray, y: np.ndarray) -> float:
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The temperature T minimising the NLL of ``softmax(scores / T)`` (scores: logits or log-probs)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda t: nll(log_softmax(scores / np.exp(t)), y), bounds=(-3, 3), method="bounded")
    return float(np.exp(res.x))


def fit_weights(logps: Sequence[np.ndarray], y: np.ndarray, grid: Sequence[float]) -> tuple[float, ...]:
    """Weights of the log-linear pool ``softmax(sum_m w_m log p_m)`` with the least NLL on ``y``."""
    best, best_w = np.inf, None
    for w in itertools.product(grid, repeat=len(logps)):
        if not any(w):
            continue
        loss = nll(log_softmax(sum(wi * lp for wi, lp in zip(w, logps, strict=True))), y)
        if loss < best - 1e-12:
            best, best_w = loss, w
    return tuple(float(v) for v in best_w)


class ClasswisePool:
    """Class-wise weighted log-linear pool: ``logit_c = a_c log p_v[c] + b_c log p_a[c] + d_c``, fitted
    by NLL with an L2 pull (``lam``) of ``a, b`` towards 1 and ``d`` towards 0 (24 numbers for 8 classes).
    Input: ``[log p_v, log p_a]`` side by side (n, 2K)."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam

    def fit(self, X: np.ndarray, y: np.ndarray) -> ClasswisePool:
        import torch

        k = X.shape[1] // 2
        lv, la = torch.tensor(X[:, :k], dtype=torch.float64), torch.tensor(X[:, k:], dtype=torch.float64)
        target = torch.tensor(y)
        params = torch.zeros(3, k, dtype=torch.float64, requires_grad=True)  # a-1, b-1, d
        opt = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            logits = (1 + params[0]) * lv + (1 + params[1]) * la + params[2]
            loss = torch.nn.functional.cross_entropy(logits, target) + self.lam * params.square().sum() / len(y)
            loss.backward()
            return loss

        opt.step(closure)
        self.params_ = params.detach().numpy()
        self.classes_ = np.arange(k)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        k = X.shape[1] // 2
        a, b, d = self.params_
        return np.exp(log_softmax((1 + a) * X[:, :k] + (1 + b) * X[:, k:] + d))


def fit_stacker(logp_v: np.ndarray, logp_a: np.ndarray, au: np.ndarray, y: np.ndarray, groups: np.ndarray,
                Cs: Sequence[float], seed: int) -> dict[str, Any]:
    """The learned fusion with the best leave-one-speaker-out accuracy over ``groups``: a class-wise
    weighted pool, or a logistic regression over the log-probabilities (with or without the AU features).
    Returns the refitted model and a ``features(logp_v, logp_a, au)`` function for new data."""
    from avemo.training.classic import full_probs, inner_splits

    feature_sets = {"logp": lambda v, a, u: np.concatenate([v, a], 1),
                    "logp+au": lambda v, a, u: np.concatenate([v, a, u], 1)}
    candidates = [("classwise_pool", "logp", {"lam": lam}, lambda p: ClasswisePool(**p)) for lam in (1.0, 10.0, 100.0)]
    candidates += [("logreg", fs, {"C": float(c)}, lambda p: make_estimator("logreg", p, seed))
                   for fs in feature_sets for c in Cs]
    splits = inner_splits(groups, n_splits=len(set(groups.tolist())))
    table = []
    for name, fs, params, factory in candidates:
        X = feature_sets[fs](logp_v, logp_a, au)
        probs = np.zeros((len(y), len(EMOTIONS)))
        for tr, va in splits:
            probs[va] = full_probs(factory(params).fit(X[tr], y[tr]), X[va], len(EMOTIONS))
        table.append({"name": name, "features": fs, "params": params,
                      "inner_acc": float((probs.argmax(1) == y).mean()), "inner_nll": nll(np.log(probs + 1e-9), y)})
    best = max(range(len(table)), key=lambda i: (table[i]["inner_acc"], -table[i]["inner_nll"]))
    name, fs, params, factory = candidates[best]
    model = factory(params).fit(feature_sets[fs](logp_v, logp_a, au), y)
    return {"model": model, "features": feature_sets[fs], "choice": table[best], "table": table}


def _voice_predictions(voice_runs: Sequence[Path], fold: Fold, y: np.ndarray) -> tuple[dict[str, np.ndarray],
                                                                                       list[float]]:
    """The voice runs' predictions for a fold; several runs (seeds) are ensembled by averaging their
    log-probabilities, as :class:`avemo.models.encoders.audio.VoiceEnsemble` does."""
    members = []
    for run in voice_runs:
        path = run / f"fold_{fold.index}" / "predictions.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; train the voice recipe first "
                                    f"(avemo train recipes/{run.name}.yaml)")
        with np.load(path) as z:
            v = {k: z[k] for k in z.files}
        if not (np.array_equal(v["val_idx"], fold.val) and np.array_equal(v["test_idx"], fold.test)):
            raise RecipeError(f"{path}: the voice run's folds differ from this recipe's (same corpus, protocol "
                              "and split seed needed)")
        members.append(v)
    out = {f"{part}_logits": np.mean([log_softmax(m[f"{part}_logits"]) for m in members], axis=0)
           for part in ("val", "test")}
    out["test_probs"] = np.exp(log_softmax(out["test_logits"]))
    val_acc = [float((m["val_logits"].argmax(1) == y[fold.val]).mean()) for m in members]
    return out, val_acc


def _au_part(cache: Path, candidates: Sequence[dict[str, Any]], au: np.ndarray, y: np.ndarray,
             groups: np.ndarray, outer: np.ndarray, test: np.ndarray, seed: int) -> tuple[dict[str, Any], np.ndarray]:
    """The AU classifier chosen on the training actors, its out-of-fold probabilities over them and its
    test probabilities after refitting; stored in ``cache`` (it does not depend on the voice runs)."""
    import json

    from avemo.training.classic import full_probs

    if (cache / "au.npz").is_file() and (cache / "choice.json").is_file():
        choice = json.loads((cache / "choice.json").read_text())
        if choice.get("candidates") == list(candidates):
            with np.load(cache / "au.npz") as z:
                return {**choice, "oof": z["oof"]}, z["test"]
    choice = select(candidates, au[outer], y[outer], groups[outer], len(EMOTIONS), seed)
    est = make_estimator(choice["name"], choice["params"], seed).fit(au[outer], y[outer])
    test_probs = full_probs(est, au[test], len(EMOTIONS))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cache / "au.npz", oof=choice["oof"], test=test_probs)
    loop.write_json(cache / "choice.json", {**{k: v for k, v in choice.items() if k != "oof"},
                                            "candidates": list(candidates)})
    return choice, test_probs


def _save(row_dir: Path, fold: Fold, probs: np.ndarray, y: np.ndarray, extra: dict[str, Any]) -> None:
    out = row_dir / f"fold_{fold.index}"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "predictions.npz", test_probs=probs, test_y=y[fold.test], test_idx=fold.test)
    loop.write_json(out / "fold.json", {**fold.describe(), **extra})


def run_folds(recipe: Recipe, samples: Sequence, folds: Sequence[Fold], run_dir: Path,
              only: Sequence[int] | None = None, show: bool = True) -> list[Path]:
    """Compute every row for every fold from a finished voice run (``fusion.voice_run``)."""
    from avemo.training.classic import full_probs

    cfg = recipe.fusion
    voice_runs = [Path(r) for r in cfg.voice_runs]
    grid = [float(v) for v in cfg.weight_grid]
    Cs = list(cfg.stack_C)
    au_models = candidates(recipe) or [{"name": "logreg", "grid": {"C": [0.1, 1.0]}}]
    y = labels_of(samples)
    au = au_features(samples)
    groups = np.array([s.speaker for s in samples])
    rows = run_dir / "rows"
    K = len(EMOTIONS)
    missing: list[int] = []
    with loop.progress(show) as bar:
        task = bar.add_task(f"{recipe.name}: folds", total=len(folds))
        for fold in folds:
            if only is not None and fold.index not in only:
                continue
            timer = loop.Timer()
            outer = fold.outer_train
            # AU: model chosen on the training actors; out-of-fold predictions over them for calibration
            choice, au_test = _au_part(run_dir / "au" / f"fold_{fold.index}", au_models, au, y, groups, outer,
                                       fold.test, recipe.seed)
            try:
                v, member_val_acc = _voice_predictions(voice_runs, fold, y)
            except FileNotFoundError as exc:
                bar.console.log(f"fold {fold.index}: AU part done; {exc}; run again once the voice runs are done")
                missing.append(fold.index)
                continue
            au_oof = dict(zip(outer.tolist(), choice["oof"], strict=True))
            logp_a_outer = np.log(np.clip(choice["oof"], 1e-4, 1))
            t_a = fit_temperature(logp_a_outer, y[outer])
            t_v = fit_temperature(v["val_logits"], y[fold.val])
            lv_val = log_softmax(v["val_logits"] / t_v)
            la_val = log_softmax(np.log(np.clip(np.stack([au_oof[i] for i in fold.val.tolist()]), 1e-4, 1)) / t_a)
            w_v, w_a = fit_weights([lv_val, la_val], y[fold.val], grid)
            lv_test = log_softmax(v["test_logits"] / t_v)
            la_test = log_softmax(np.log(np.clip(au_test, 1e-4, 1)) / t_a)
            late = np.exp(log_softmax(w_v * lv_test + w_a * la_test))
            # stacking on the inner-validation actors
            scaler_stats = (au[outer].mean(0), au[outer].std(0) + 1e-6)
            au_std = (au - scaler_stats[0]) / scaler_stats[1]
            stack = fit_stacker(lv_val, la_val, au_std[fold.val], y[fold.val], groups[fold.val], Cs, recipe.seed)
            learned = full_probs(stack["model"], stack["features"](lv_test, la_test, au_std[fold.test]), K)
            common = {"au_model": {k: choice[k] for k in ("name", "params", "inner_acc")},
                      "temperatures": {"voice": t_v, "face": t_a}, "weights": {"voice": w_v, "face": w_a},
                      "train_seconds": timer.seconds}
            _save(rows / "au_only", fold, au_test, y, {"au_model": common["au_model"]})
            _save(rows / "voice_only", fold, v["test_probs"], y,
                  {"voice_runs": [str(r) for r in voice_runs], "member_val_acc": member_val_acc,
                   "ensemble_val_acc": float((v["val_logits"].argmax(1) == y[fold.val]).mean())})
            _save(rows / "late_fusion", fold, late, y, common)
            _save(rows / "learned_fusion", fold, learned, y, {**common, "stacker": stack["choice"],
                                                               "stacker_candidates": stack["table"]})
            bar.update(task, advance=1)
            accs = {name: float((p.argmax(1) == y[fold.test]).mean()) for name, p in
                    (("au", au_test), ("voice", v["test_probs"]), ("late", late), ("learned", learned))}
            bar.console.log(f"fold {fold.index}: T_v={t_v:.2f} T_a={t_a:.2f} w_v={w_v} w_a={w_a} "
                            f"au={choice['name']}{choice['params']} "
                            + " ".join(f"{k}={a:.3f}" for k, a in accs.items()))
    if missing:
        raise RecipeError(f"folds {missing} wait for voice predictions (their AU parts are stored)")
    for name, text in ROWS.items():
        loop.write_json(rows / name / "row.json", {"description": text})
    return [rows]
