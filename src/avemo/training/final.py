"""``avemo train RECIPE --final``: the shipped bundles, made after cross-validation with the same settings.

* voice: the recipe's model trained on *every* actor of the corpus for the recipe's epochs (no test
  actor is left; its expected accuracy is the cross-validated one, quoted in the card);
* fusion: the late-fusion temperatures and weights fitted in each fold (on training actors only),
  pooled over the folds (geometric mean of temperatures, mean of weights).

Each bundle gets ``bundle.json`` (preprocessing included) and a ``MODEL_CARD.md`` written from the
stored results, so the card's numbers are the benchmark's numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from avemo.labels import EMOTIONS
from avemo.models.bundles import WEIGHTS_DIR, save_bundle
from avemo.training import loop
from avemo.training.recipe import Recipe, RecipeError
from avemo.training.runner import RESULTS_DIR

LICENCE = ("Trained on RAVDESS (Livingstone & Russo 2018, CC BY-NC-SA 4.0): the weights inherit the "
           "licence, research and non-commercial use only.")


def _results(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _score_line(row: dict[str, Any]) -> str:
    s = row["summary"]
    per = ", ".join(f"{a:.3f}" for a in s["accuracy"]["per_fold"])
    return (f"accuracy {s['accuracy']['mean']:.3f} ± {s['accuracy']['std']:.3f}, macro-F1 "
            f"{s['macro_f1']['mean']:.3f} ± {s['macro_f1']['std']:.3f}, UAR {s['uar']['mean']:.3f} ± "
            f"{s['uar']['std']:.3f} (per fold: {per})")


def _bundle_dir(recipe: Recipe, bundle_dir: Path | None) -> Path:
    bundle = recipe.ship.bundle
    if not bundle:
        raise RecipeError(f"{recipe.path}: no ship.bundle; this recipe has no shipped model")
    return Path(bundle_dir) / bundle if bundle_dir else WEIGHTS_DIR / bundle


def train_final(recipe: Recipe, bundle_dir: Path | None = None, *, run_dir: Path | None = None,
                show: bool = True) -> Path:
    """Write the recipe's shipped bundle; returns its folder (for a voice recipe without ``ship``: the
    final model's run folder, for use as an ensemble member by another recipe)."""
    run_dir = Path(run_dir or recipe.default_run_dir())
    if recipe.kind == "voice" and not recipe.ship.bundle:
        _final_voice_model(recipe, run_dir, show)
        return run_dir / "final"
    folder = _bundle_dir(recipe, bundle_dir)
    if recipe.kind == "voice":
        return _final_voice(recipe, folder, run_dir, show)
    if recipe.kind == "fusion":
        return _final_fusion(recipe, folder, run_dir)
    raise RecipeError(f"{recipe.path}: kind {recipe.kind!r} ships no bundle")


def _final_voice_model(recipe: Recipe, run_dir: Path, show: bool):
    """The recipe's model trained on every sample (resumed or reloaded when already trained)."""
    from avemo.training.data import labels_of, load_samples, voice_logmels
    from avemo.training.voice import train_model

    samples = load_samples(recipe)
    mels = voice_logmels(samples, recipe.features)
    out = run_dir / "final"
    with loop.progress(show) as bar:
        model = train_model(recipe, mels, labels_of(samples), np.arange(len(samples)), out, fold=len(samples),
                            bar=bar)
    seconds = sum(r.get("seconds", 0) for r in loop.read_jsonl(out / "log.jsonl"))
    return model, samples, seconds


def _final_voice(recipe: Recipe, folder: Path, run_dir: Path, show: bool) -> Path:
    from avemo.models.registry import create_model
    from avemo.training.data import voice_settings
    from avemo.training.recipe import load_recipe
    from avemo.training.voice import model_kwargs

    model, samples, seconds = _final_voice_model(recipe, run_dir, show)
    members = [recipe.name]
    models = [model]
    for name in recipe.ship.members:
        other = load_recipe(Path("recipes") / f"{name}.yaml")
        if model_kwargs(other) != model_kwargs(recipe):
            raise RecipeError(f"ensemble member {name} has other model settings than {recipe.name}")
        m, _, s = _final_voice_model(other, other.default_run_dir(), show)
        models.append(m)
        members.append(name)
        seconds += s
    kwargs = model_kwargs(recipe)
    if len(models) > 1:
        kwargs["members"] = len(models)
        model = create_model(recipe.model.name or "voice", **kwargs)
        for slot, trained in zip(model.members, models, strict=True):
            slot.load_state_dict(trained.state_dict())
        model.eval()
    feats = recipe.features
    settings = voice_settings(feats)
    preprocessing = {"sample_rate": settings["mel"]["sample_rate"], "front_end": {"kind": "log-mel", **settings["mel"]},
                     "head": {}, "window_s": feats.window_s, "eval_hop_s": feats.eval_hop_s,
                     "trim_db": settings["trim_db"],
                     "input": "16 kHz mono waveform windows (batch, samples); the log-mel front end "
                              "(preprocessing.front_end) is part of the network",
                     "normalisation": "inside the model: per-mel mean removed, divided by the window's std",
                     "output": "logits over labels (softmax for probabilities)"}
    cv = _results(recipe.name)
    fused = _results(recipe.ship.ensemble_results or "")
    ens_row = (fused or {}).get("rows", {}).get("voice_only")
    meta = {"recipe": recipe.name, "members": members, "trained_on": f"{recipe.corpus}: all {len(samples)} clips, "
            f"{len({s.speaker for s in samples})} speakers", "epochs": recipe.train.epochs,
            "train_seconds": round(seconds, 1), "commit": loop.git_commit(), "machine": loop.machine(),
            "cross_validation": cv["rows"][recipe.name]["summary"] if cv else None,
            "cross_validation_ensemble": ens_row["summary"] if ens_row else None}
    save_bundle(folder, kind="voice", architecture=recipe.model.name or "voice", model=model, labels=EMOTIONS,
                kwargs=kwargs, preprocessing=preprocessing, meta=meta, check_inputs=_check_waves(samples))
    size = (folder / "model.safetensors").stat().st_size
    n_params = sum(p.numel() for p in model.parameters())
    cv_line = _score_line(cv["rows"][recipe.name]) if cv else "not yet run"
    ens_text = (f" The ensemble of the {len(models)} seeds (fusion recipe's voice row): "
                f"{_score_line(ens_row) if ens_row else 'not yet run'}." if len(models) > 1 else "")
    gain_db = recipe.augment.gain_db
    gain = f" a random level per example ({gain_db[0]:+g} to {gain_db[1]:+g} dB)," if gain_db else ""
    what = (f"an ensemble of {len(models)} such networks trained with different seeds ({', '.join(members)}), "
            "averaging their log-probabilities" if len(models) > 1 else "one network")
    (folder / "MODEL_CARD.md").write_text(f"""# {folder.name}

Voice emotion classifier: a compact residual CNN over log-mel spectrograms with attentive statistics
pooling; {what}. {n_params:,} parameters, {size / 1e6:.2f} MB; 8 classes ({", ".join(EMOTIONS)}).

## Intended use
Emotion of a speaking voice in 3 s windows of 16 kHz mono audio (the analyzer runs it on the
windows where voice activity detection finds speech and averages over windows). Acted English
speech, two sentences: expect lower accuracy on spontaneous speech, other languages, noise.

## Input
A batch of {preprocessing['window_s']:g} s windows of 16 kHz mono audio, (batch, samples). The bundle's network
(`model.onnx`, or `get_model(backend="torch")`) computes the log-mel itself
(`avemo.audio.log_mel` with `preprocessing["front_end"]`, {settings['mel']['n_mels']} bands) and normalises it.
Output: logits.

## Training data and procedure
RAVDESS speech (Livingstone & Russo 2018), audio only, {meta['trained_on']}. **This shipped model was
trained on all 24 actors after cross-validation, with the settings chosen there**; it has no held-out
actor of its own. Leading/trailing silence trimmed ({settings['trim_db']:g} dB under peak), random
{preprocessing['window_s']:g} s crops, SpecAugment, mixup,{gain} label smoothing, AdamW with warm-up + cosine
schedule, {meta['epochs']} epochs. Recipes: {", ".join(f"`recipes/{m}.yaml`" for m in members)};
command: `avemo train recipes/{recipe.name}.yaml --final`. Training took {seconds / 60:.1f} min on
{meta['machine']['cpu_count']} shared CPU cores ({meta['machine']['torch_threads']} torch thread per process),
commit {meta['commit']}.

## Expected accuracy (cross-validated, actor-independent)
6 folds of 4 actors (1-4, 5-8, ...), every actor tested once; in each fold the networks were trained
on 16 of the 20 training actors (4 kept for validation and calibration). Mean ± std over folds, one
network (seed {recipe.seed}): {cv_line}.{ens_text} Chance is 0.125. Details: BENCHMARKS.md.

## Limitations
Acted, exaggerated emotions of 24 North-American actors; *neutral* and *calm* are easily confused;
windows without speech give meaningless output (use voice activity detection first).

## Licence
{LICENCE}
""")
    return folder


def _check_waves(samples: list, n: int = 8) -> np.ndarray:
    """3 s of real speech from ``n`` of the samples (for the ONNX check of :func:`save_bundle`)."""
    from avemo.media import read_audio

    step = max(1, len(samples) // n)
    return np.stack([np.resize(read_audio(s.path, 16000), 48000) for s in samples[::step][:n]]).astype(np.float32)


def _final_fusion(recipe: Recipe, folder: Path, run_dir: Path) -> Path:
    fold_files = sorted((run_dir / "rows" / "late_fusion").glob("fold_*/fold.json"))
    params = [json.loads(p.read_text()) for p in fold_files]
    if not params:
        raise RecipeError(f"{run_dir}: no late-fusion folds; run `avemo train {recipe.path}` first")
    mods = ("face", "voice")
    temps = {m: float(np.exp(np.mean([np.log(p["temperatures"][m]) for p in params]))) for m in mods}
    weights = {m: float(np.mean([p["weights"][m] for p in params])) for m in mods}
    cv = _results(recipe.name)
    rows = cv["rows"] if cv else {}
    meta = {"recipe": recipe.name, "per_fold": [{k: p[k] for k in ("fold", "temperatures", "weights")} for p in params],
            "commit": loop.git_commit(),
            "cross_validation": {name: row["summary"] for name, row in rows.items()}}
    save_bundle(folder, kind="fusion", architecture="fusion", labels=EMOTIONS, kwargs={"modalities": list(mods)},
                preprocessing={"weights": weights, "temperatures": temps, "labels": list(EMOTIONS),
                               "rule": "p ∝ Π_m softmax(log p_m / T_m)^w_m over present modalities; "
                                       "one modality: its calibrated probabilities",
                               "face_without_calm": "calm takes the neutral probability, then renormalise"},
                meta=meta)
    table = "\n".join(f"| {name} | {_score_line(row)} |" for name, row in rows.items()) or "| (not yet run) | |"
    (folder / "MODEL_CARD.md").write_text(f"""# {folder.name}

Calibrated late fusion of face and voice emotion probabilities over the 8 canonical classes
({", ".join(EMOTIONS)}): each modality's probabilities are temperature-scaled, then pooled
log-linearly, `p ∝ Π_m p̃_m^w_m`, over the modalities present (one present: its calibrated
probabilities; none: NaN). Parameters: temperatures {json.dumps({m: round(t, 3) for m, t in temps.items()})},
weights {json.dumps({m: round(w, 3) for m, w in weights.items()})}.

## What was validated
**Facial action units + voice on RAVDESS.** The "face" slot was filled by a classifier of the
OpenFace clip-level action units of each take (`ravdess-au/au35_clip_means.csv`), the "voice" slot
by the `voice` CNN, on the 1440 RAVDESS speech takes, 6 actor-independent folds (4 actors each).
In every fold the temperatures and weights were fitted on training actors only (voice: the 4
inner-validation actors; AU: out-of-fold predictions over the 20 training actors); the shipped
values pool the six folds' values (geometric mean of temperatures, mean of weights).

| row | 6-fold result (mean ± std) |
| --- | --- |
{table}

## What was not validated
**The face model + voice.** At run time the analyzer puts the FER-2013 face model's probabilities
(7 classes, no calm; calm takes neutral's probability) in the "face" slot. That model is a different
classifier from the AU model the face temperature and weight were fitted for, and no corpus here has
video frames together with audio to measure that combination. Treat the fused output as a
reasonable default, not a measured one; refit the face temperature on the face model's own
validation data where possible.

## Reproduce
`avemo train recipes/voice_ravdess.yaml && avemo train recipes/{recipe.name}.yaml && avemo evaluate
recipes/{recipe.name}.yaml --publish && avemo train recipes/{recipe.name}.yaml --final` (commit {meta['commit']}).

## Licence
{LICENCE}
""")
    return folder
