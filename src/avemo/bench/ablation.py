"""The systems ablation: every reviewed system under one cheap protocol, on what this machine's data allows.

Variants (fixed before any result was seen; the same for every system):

* ``voice``     — the system's voice branch alone (``inputs: {audio: logmel, video: none}``) on the 1440
  RAVDESS speech clips;
* ``au_fusion`` — the whole system on the RAVDESS audio + facial action-unit pairs, the 35 clip-level
  OpenFace AU means standing in for the face: every frame-level visual encoder is replaced by a small
  MLP (:class:`avemo.models.blocks.au.AUEncoder`), so this measures the system's *fusion* with a
  weak clip-level visual cue, not its published visual branch;
* ``smoke``     — systems that need frame-level video (face crops over time, key frames) trained end
  to end on the real shared clips (:func:`smoke_real_clips`); there is no full audio-visual video corpus
  here, so their full-corpus accuracy cannot be measured, and no accuracy is reported for them.

Protocol (:data:`PROTOCOL`): the 6 standard RAVDESS folds (actors 1-4, 5-8, ...), each model trained on
the 16 inner-training actors of the fold, :data:`EPOCHS` epochs (no early stopping, no selection on the
test actors), small widths (each recipe's ``ablation.kwargs``), random 3 s log-mel crops, test-time
averaging over 3 s windows every 1 s, one torch thread. Results go to ``benchmarks/results/systems/ablation/``
(one JSON per system and variant, as ``avemo evaluate`` writes them); :func:`render` turns them into
the ablation section of BENCHMARKS.md; a row that has no stored result says so ("not run (time)").
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avemo.training import loop
from avemo.training.recipe import Recipe, RecipeError, load_recipe

RESULTS = Path("benchmarks") / "results" / "systems" / "ablation"
RUNS = Path("runs") / "ablation"
BEGIN, END = "<!-- systems-ablation:begin -->", "<!-- systems-ablation:end -->"

SYSTEMS = ("dixit2024_cnn", "khan2024_mser", "goncalves2024_robust", "ma2020_shgr", "kozlov2024_fuzzy",
           "almulla2024_fvt", "hao2020_ensemble", "farhoudi2021_bel", "mocanu2023_cma", "akturk2024_onn",
           "zhang2016_cnnrnn")
#: Systems whose visual branch needs frame-level video (a 3D CNN over face crops, key frames, an LSTM over frames).
FRAME_VIDEO = ("mocanu2023_cma", "akturk2024_onn", "zhang2016_cnnrnn")
VARIANTS = {"voice": {"audio": "logmel", "video": "none"}, "au_fusion": {"audio": "logmel", "video": "au35"}}
EPOCHS = 6
PROTOCOL: dict[str, Any] = {
    "train": {"epochs": EPOCHS, "warmup_epochs": 1},
    "protocol": {"name": "ravdess6", "val_speakers": 4},
    "features": {"mel": {}, "trim_db": 40, "window_s": 3.0, "eval_hop_s": 1.0},
    "optim": {"lr": 0.002, "weight_decay": 0.0001, "batch_size": 32, "label_smoothing": 0.1},
    "augment": {"specaugment": {"freq": 8, "time": 25, "n": 1}},
    "audio_front_end": None,   # every system on the same plain log-mels (no system-specific noise reduction)
}


def recipe_path(system: str) -> Path:
    return Path("recipes") / f"{system}_ravdess.yaml"


def variants_of(system: str) -> list[str]:
    return ["voice"] if system in FRAME_VIDEO else ["voice", "au_fusion"]


def variant_recipe(system: str, variant: str, *, overrides: dict[str, Any] | None = None) -> Recipe:
    """The system's recipe under the ablation protocol: small widths (``ablation.kwargs``, plus
    ``ablation.au_kwargs`` for the AU variant), the variant's inputs, :data:`PROTOCOL`."""
    base = load_recipe(recipe_path(system))
    abl = base.ablation
    if not abl.kwargs:
        raise RecipeError(f"{base.path}: no ablation.kwargs (the small widths of the ablation protocol)")
    kwargs = {**copy.deepcopy(dict(abl.kwargs)), **(dict(abl.au_kwargs) if variant == "au_fusion" else {})}
    values = {**PROTOCOL, "name": f"{system}__{variant}", "model.kwargs": kwargs, "inputs": VARIANTS[variant],
              "description": f"{base.description or system} — ablation, {variant}",
              **(overrides or {})}
    return load_recipe(base.path, values)


def _claim(run_dir: Path) -> bool:
    """Take a run folder for this process (several workers share the list); ``False`` if another has it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(run_dir / ".claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def run(systems: Sequence[str] = SYSTEMS, variants: Sequence[str] = ("au_fusion", "voice"), *,
        runs: Path = RUNS, results: Path = RESULTS, overrides: dict[str, Any] | None = None,
        show: bool = True) -> list[Path]:
    """Train and evaluate every (variant, system) not yet published, variant-major; returns the JSONs written.
    Resumable, and safe to run in several processes at once (each claims a run folder)."""
    from avemo.training.runner import evaluate, train

    written = []
    for variant in variants:
        for system in systems:
            if variant not in variants_of(system):
                continue
            recipe = variant_recipe(system, variant, overrides=overrides)
            out = results / f"{recipe.name}.json"
            run_dir = runs / recipe.name
            if out.is_file() or not _claim(run_dir):
                continue
            try:
                train(recipe, run_dir, show=show)
                res = evaluate(recipe, run_dir)
                res["command"] = "avemo bench ablation --run"
                res["ablation"] = {"system": system, "variant": variant, "protocol": PROTOCOL}
                written.append(loop.write_json(out, res))
            finally:
                (run_dir / ".claimed").unlink(missing_ok=True)
    return written


# -- missing modality at test time ---------------------------------------------------------------------------

MISSING = ("khan2024_mser", "goncalves2024_robust")  # the same network, trained without / with modality dropout


def missing_modality(system: str, *, runs: Path = RUNS, results: Path = RESULTS,
                     overrides: dict[str, Any] | None = None) -> Path:
    """Test accuracy per fold of a finished ``au_fusion`` run with both inputs, with the AU side absent and
    with the voice absent at test time (the same trained models, from each fold's checkpoint)."""
    import dataclasses

    import numpy as np

    from avemo.training.data import load_samples, make_folds
    from avemo.training.systems import build_system, load_data, predict, usable

    recipe = variant_recipe(system, "au_fusion", overrides=overrides)
    run_dir = runs / recipe.name
    modes = VARIANTS["au_fusion"]
    samples = load_samples(recipe)
    keep = usable(samples, modes)
    data = load_data(recipe, samples, modes, keep)
    conditions = {"both": data, "voice_only": dataclasses.replace(data, modes={**modes, "video": "none"}),
                  "au_only": dataclasses.replace(data, modes={**modes, "audio": "none"}, mels=None)}
    per_fold: dict[str, list[float]] = {c: [] for c in conditions}
    for fold in make_folds(recipe, samples):
        state = loop.load_checkpoint(run_dir / f"fold_{fold.index}" / "checkpoint.pt")
        if state is None or not (run_dir / f"fold_{fold.index}" / "predictions.npz").is_file():
            raise RecipeError(f"{run_dir}: fold {fold.index} is not finished; run `avemo bench ablation --run` first")
        train_idx, test_idx = fold.train[keep[fold.train]], fold.test[keep[fold.test]]
        data.standardise_au(train_idx)
        model, _ = build_system(recipe, modes, data)
        model.load_state_dict(state["model"])
        for name, d in conditions.items():
            d.au_scaled = data.au_scaled
            probs = predict(model, d, test_idx)["probs"]
            per_fold[name].append(float((probs.argmax(1) == data.y[test_idx]).mean()))
    summary = {c: {"mean": float(np.mean(v)), "std": float(np.std(v)), "per_fold": v} for c, v in per_fold.items()}
    return loop.write_json(results / f"{system}__missing.json", {
        "system": system, "run": str(run_dir), "accuracy": summary, "commit": loop.git_commit(),
        "machine": loop.machine(), "command": "avemo bench ablation --run"})


# -- smoke test on the real clips ----------------------------------------------------------------------------

def real_clip_manifest(folder: Path, clips: Path | None = None) -> Path:
    """A manifest of the real shared clips with video (RAVDESS mp4, whose audio is the WAV beside it;
    CREMA-D FLV with audio) in ``folder``."""
    from avemo.config import data_root
    from avemo.datasets.cremad import parse_name as cremad_name
    from avemo.datasets.ravdess import parse_name as ravdess_name
    from avemo.labels import to_canonical

    clips = Path(clips or data_root() / "clips")
    rows = []
    for p in sorted((clips / "ravdess").glob("*.mp4")):
        f = ravdess_name(p.stem)
        rows.append({"path": str(p), "label": to_canonical("ravdess", f["emotion_code"]),
                     "speaker": f"ravdess:{f['actor']:02d}", "corpus": "ravdess", "modality": "av"})
    for p in sorted((clips / "cremad").glob("*.flv")):
        f = cremad_name(p.stem)
        rows.append({"path": str(p), "label": to_canonical("cremad", f["emotion_code"]),
                     "speaker": f"cremad:{f['actor']}", "corpus": "cremad", "modality": "av"})
    if not rows:
        raise RecipeError(f"{clips}: no RAVDESS .mp4 or CREMA-D .flv clips")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "clips.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def smoke_real_clips(system: str, *, runs: Path = RUNS, results: Path = RESULTS, epochs: int = 2,
                     show: bool = False) -> Path:
    """Train ``system`` (its full recipe inputs, ablation widths) end to end on the real clips: CREMA-D
    actor 1001's three FLVs for training, the RAVDESS actor-19 take for testing. Records that the path
    runs (faces found, time, parameters), not an accuracy: four clips measure nothing."""
    from avemo.training.runner import train

    run_dir = runs / f"{system}__smoke"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    manifest = real_clip_manifest(run_dir)
    base = load_recipe(recipe_path(system))
    recipe = load_recipe(base.path, {
        "name": f"{system}__smoke", "corpus": "manifest", "data": {"root": str(manifest)},
        "protocol": {"name": "holdout", "test_speakers": [19], "val_speakers": 0},
        "train.epochs": epochs, "model.kwargs": copy.deepcopy(dict(base.ablation.kwargs)),
        "optim.batch_size": 3})
    timer = loop.Timer()
    train(recipe, run_dir, show=show)
    fold = json.loads((run_dir / "fold_0" / "fold.json").read_text())
    info = {"recipe": recipe.name, "system": system, "variant": "smoke", "data": "real shared clips: "
            "CREMA-D 1001_DFA_{ANG,HAP,SAD}_XX.flv (train), RAVDESS 01-01-08-02-01-01-19.mp4 + its WAV (test)",
            "inputs": fold["inputs"], "n_params": fold["n_params"], "epochs": fold["epochs"],
            "face_frames": fold.get("face_frames"), "train_seconds": fold["train_seconds"],
            "wall_seconds": timer.seconds, "commit": loop.git_commit(), "machine": loop.machine()}
    return loop.write_json(results / f"{system}__smoke.json", info)


# -- rendering -------------------------------------------------------------------------------------------

def _pm(s: dict[str, Any], key: str) -> str:
    return f"{100 * s[key]['mean']:.1f} ± {100 * s[key]['std']:.1f}"


def used_parameters(system: str, variant: str) -> int:
    """Trainable parameters the variant's inputs reach (e.g. a voice-only run leaves the visual branch out)."""
    import numpy as np

    from avemo.training.systems import SystemData, build_system, used_params

    recipe = variant_recipe(system, variant)
    modes = VARIANTS[variant]
    data = SystemData(y=np.zeros(1, np.int64), modes=modes, length=300, hop=100,
                      au=np.zeros((1, 35), np.float32) if modes["video"] == "au35" else None)
    model, _ = build_system(recipe, modes, data)
    return used_params(model, modes, data)


def _row(system: str, variant: str, res: dict[str, Any] | None) -> str:
    inputs = {"voice": "log-mel (3 s crops)", "au_fusion": "log-mel + AU35 via MLP adapter (not the visual CNN)"}
    head = f"| `{system}` | {variant} | {inputs[variant]} |"
    if res is None:
        return head + " not run (time) | | | | | |"
    row = next(iter(res["rows"].values()))
    s = row["summary"]
    per = " / ".join(f"{100 * a:.1f}" for a in s["accuracy"]["per_fold"])
    secs = [f["train_seconds"] for f in row["folds"] if f.get("train_seconds") is not None]
    about = row.get("about") or {}
    used = about.get("n_params_used") or used_parameters(system, variant)
    params = f"{used:,}" + (f" (of {about['n_params']:,} built)" if about.get("n_params", used) != used else "")
    time = f"{sum(secs) / 60:.1f} ({sum(secs) / 60 / len(secs):.2f}/fold)" if secs else "n/a"
    return (f"{head} {_pm(s, 'accuracy')} | {_pm(s, 'macro_f1')} | {_pm(s, 'uar')} | {per} | "
            f"{params} | {time} |")


def render(results: Path = RESULTS) -> str:
    """The ablation section (markdown) from the stored results; missing rows are marked, never filled."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(Path(results).glob("*.json"))}
    meta = next((r for r in found.values() if "rows" in r), None)
    lines = [BEGIN, "## Systems ablation (cheap protocol)", "",
             "Regenerate with `avemo bench ablation --run` (trains what is missing, resumable) or "
             "`avemo bench ablation` (renders the stored `benchmarks/results/systems/ablation/*.json`).", "",
             "- data: RAVDESS speech, 1440 clips, 24 actors (`ravdess-speech-16k`); for `au_fusion` the same takes "
             "paired with their 35 clip-level OpenFace action-unit means (`ravdess-au/au35_clip_means.csv`)",
             "- protocol: 6 actor-independent folds (test actors 1-4, 5-8, ..., 21-24), every actor tested once; "
             f"each model trained on the fold's 16 inner-training actors for a fixed {EPOCHS} epochs chosen before "
             "any run (no early stopping, nothing chosen on test actors); AdamW lr 0.002, warm-up + cosine, batch 32, "
             "label smoothing 0.1, one SpecAugment mask; random 3 s log-mel crops, test-time mean over 3 s windows "
             "every 1 s; each system's own loss (`system.loss`); small widths (`ablation.kwargs` in each recipe)",
             "- `au_fusion`: the AU vector is fed as a one-frame \"video\" and every frame-level visual encoder of "
             "the system is **replaced by a small MLP** (35 → 64 → the encoder's width); it measures each system's "
             "fusion with a weak clip-level visual cue, **not** its published visual CNN",
             "- cheap protocol: numbers are far below what these systems reach with full widths and training; they "
             "compare systems under one equal budget, they do not reproduce the papers",
             "- almulla2024_fvt: no text on RAVDESS (its 7 % text weight is renormalised away) and no noise reduction "
             "front end here; hao2020_ensemble `au_fusion`: members audio CNN, audio statistics, AU MLP (its "
             "face-statistics member needs pixels)",
             "- scores in %, mean ± std over the 6 folds; training time: wall-clock minutes of the training loops "
             "summed over the 6 folds, on a 2-core machine shared with other jobs (load often 10+), so only a rough "
             "guide to cost; parameters: those the variant's inputs reach (given a gradient by the system's loss), "
             "with the adapter where there is one, and in brackets all those the system builds",
             "- `voice` rows of the wrappers: with one modality, `goncalves2024_robust`'s modality dropout never "
             "fires, so it is `khan2024_mser`'s voice branch, same seed, identical numbers (as it should be); "
             "`ma2020_shgr`'s soft-HGR term needs both embeddings, so its voice row is the early-fusion CNN's voice "
             "branch with cross-entropy alone",
             "- \"not run (time)\": no stored result for that row (the run did not finish in the time available); "
             "no cell is filled that was not measured"]
    if meta:
        m = meta["machine"]
        commits = ", ".join(f"`{c}`" for c in sorted({r["commit"] for r in found.values() if "rows" in r}))
        lines.append(f"- machine: {m['platform']}, {m['cpu_count']} CPUs shared with other jobs, torch {m['torch']} "
                     f"({m.get('torch_threads', '?')} thread); HEAD when each run started: {commits} (each result's "
                     "JSON records its own; the system runner's training loop is the same in all of them)")
    lines += ["", "| system | variant | inputs | accuracy | macro-F1 | UAR | accuracy per fold | parameters | "
                  "training min (per fold) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for variant in ("voice", "au_fusion"):
        for system in SYSTEMS:
            if variant in variants_of(system):
                lines.append(_row(system, variant, found.get(f"{system}__{variant}")))
            else:
                lines.append(f"| `{system}` | {variant} | needs frame-level face video | not measurable here on "
                             "RAVDESS (no audio-visual video corpus on this machine); trained and measured on real "
                             "face pixels + real speech instead: see *Frame-level systems on a paired audio-visual "
                             "set* below | | | | | |")
    missing = [(s, found.get(f"{s}__missing")) for s in MISSING]
    lines += ["", "**A modality missing at test time** (the `au_fusion` models above, unchanged, asked with one input "
              "absent; `goncalves2024_robust` is `khan2024_mser` trained with modality dropout p = 0.3): test "
              "accuracy in %, mean ± std over the 6 folds, per fold in brackets", "",
              "| system | both | voice only (AU absent) | AU only (voice absent) |", "| --- | --- | --- | --- |"]
    for system, m in missing:
        if m is None:
            lines.append(f"| `{system}` | not run (time) | | |")
            continue
        cells = [f"{100 * m['accuracy'][c]['mean']:.1f} ± {100 * m['accuracy'][c]['std']:.1f} ("
                 + " / ".join(f"{100 * a:.1f}" for a in m["accuracy"][c]["per_fold"]) + ")"
                 for c in ("both", "voice_only", "au_only")]
        lines.append(f"| `{system}` | " + " | ".join(cells) + " |")
    lines += ["", "**Systems that need frame-level video** (" + ", ".join(f"`{s}`" for s in FRAME_VIDEO) + "): their "
              "full-corpus audio-visual accuracy **cannot be measured on this machine's data** (no RAVDESS / "
              "CREMA-D video corpus here); their accuracy on real faces paired with real speech is in the section "
              "*Frame-level systems on a paired audio-visual set* below. They are trained end to end on real clips to "
              "show the path runs "
              "(no accuracy is claimed from four clips); `tests/test_systems_training.py` also trains each of them "
              "through `avemo train` on RAVDESS-layout clips generated from the real clip (2 actors, ravdess6 folds):",
              ""]
    for system in FRAME_VIDEO:
        smoke = found.get(f"{system}__smoke")
        if smoke is None:
            lines.append(f"- `{system}`: not run (time)")
            continue
        ff = smoke.get("face_frames") or {}
        lines.append(f"- `{system}` ({smoke['inputs']['video']} input, {smoke['n_params']} parameters): "
                     f"{smoke['epochs']} epochs on {smoke['data']}; {smoke['train_seconds']:.1f} s training; "
                     f"test frames without a face: {ff.get('test_frames_without_face', '?')} of "
                     f"{ff.get('test_frames', '?')}; commit `{smoke['commit']}`")
    lines.append(END)
    return "\n".join(lines)


def write_section(results: Path = RESULTS, out: Path = Path("BENCHMARKS.md")) -> Path:
    """(Re)write the ablation section of ``out``; the rest of the file is left as it is."""
    from avemo.markdown import replace_section

    return replace_section(out, BEGIN, END, render(results))


def main(args: Any) -> int:
    """``avemo bench ablation [--run] [--systems a,b]``: train what is missing (one torch thread), then render."""
    import torch

    if args.run:
        torch.set_num_threads(1)
        chosen = tuple(args.systems.split(",")) if args.systems else SYSTEMS
        unknown = set(chosen) - set(SYSTEMS)
        if unknown:
            raise RecipeError(f"unknown systems {sorted(unknown)}; known: {', '.join(SYSTEMS)}")
        run(chosen)
        for system in MISSING:
            done = (RESULTS / f"{system}__au_fusion.json").is_file()
            if system in chosen and done and not (RESULTS / f"{system}__missing.json").is_file():
                missing_modality(system)
        for system in FRAME_VIDEO:
            lock = RUNS / f"{system}__smoke.lock"
            if system in chosen and not (RESULTS / f"{system}__smoke.json").is_file() and _claim(lock):
                try:
                    smoke_real_clips(system)
                finally:
                    shutil.rmtree(lock, ignore_errors=True)
    path = write_section(RESULTS, Path(args.out))
    print(f"systems ablation section written to {path}")
    return 0
