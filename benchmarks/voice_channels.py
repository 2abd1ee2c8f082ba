"""How the voice model holds up when the microphone or channel changes: each of the 6 actor-independent
RAVDESS folds' network (``runs/voice_ravdess/fold_k``, seed 0) on its own held-out actors, with the
test audio changed: gain -20 / +12 dB, white noise at 20 and 10 dB SNR, the 300-3400 Hz telephone
band, MP3 at 32 kbit/s and Opus at 16 kbit/s. Same features as training (16 kHz, silence trimmed,
log-mel), 3 s windows every second, averaged per utterance. Then the same again with every test
utterance scaled to the corpus's median speech level (-38 dB RMS) before the features: a test-time
fix that needs no retraining. Accuracy and macro-F1 per fold, mean and std; writes
benchmarks/results/robustness/voice_channels.json and the BENCHMARKS.md section.

    python benchmarks/voice_channels.py [--run runs/voice_ravdess]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from avemo.audio import MelConfig, log_mel
from avemo.labels import EMOTIONS
from avemo.markdown import replace_section
from avemo.media import read_audio
from avemo.robustness.corruptions import add_noise, change_gain, codec_round_trip, telephone_band
from avemo.training import loop
from avemo.training.data import labels_of, load_samples, make_folds, trim_silence, voice_settings
from avemo.training.metrics import classification_scores, summarize_folds
from avemo.training.recipe import load_recipe
from avemo.training.voice import build_model, frames_per_window, predict

SR = 16000
CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "clean (as recorded)": lambda x: x,
    "gain -20 dB": lambda x: change_gain(x, -20.0),
    "gain +12 dB (clipping)": lambda x: change_gain(x, 12.0),
    "white noise, SNR 20 dB": lambda x: add_noise(x, 20.0, seed=1),
    "white noise, SNR 10 dB": lambda x: add_noise(x, 10.0, seed=1),
    "telephone band 300-3400 Hz": lambda x: telephone_band(x, SR),
    "MP3 32 kbit/s": lambda x: codec_round_trip(x, SR, "libmp3lame", 32000),
    "Opus 16 kbit/s": lambda x: codec_round_trip(x, SR, "libopus", 16000),
}
BEGIN, END = "<!-- voice-channels:begin -->", "<!-- voice-channels:end -->"
LEVEL_DB = -38.0  # median RMS of RAVDESS speech after trimming (every 8th clip: median -38.3, p10 -49.7, p90 -27.1)


def level_normalised(wave: np.ndarray, db: float = LEVEL_DB) -> np.ndarray:
    """``wave`` scaled so that its RMS is ``db`` dB (clipped to [-1, 1])."""
    rms = float(np.sqrt(np.mean(wave**2))) if wave.size else 0.0
    return wave if rms == 0 else change_gain(wave, db - 20 * np.log10(rms))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/voice_ravdess"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/robustness/voice_channels.json"))
    ap.add_argument("--markdown", default="BENCHMARKS.md",
                    help="the file whose voice-channels section is rewritten ('' for none)")
    ap.add_argument("--folds", default=None, help="comma-separated folds (default: all six)")
    ap.add_argument("--before", type=Path, default=Path("benchmarks/results/robustness/voice_channels_before.json"),
                    help="an earlier result of this script, shown side by side (missing: not shown)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    recipe = load_recipe(args.run / "recipe.yaml")
    samples = load_samples(recipe)
    folds = make_folds(recipe, samples)
    y = labels_of(samples)
    settings = voice_settings(recipe.section("features"))
    cfg = MelConfig.from_dict(settings["mel"])
    length, hop = frames_per_window(recipe)
    variants = {"": lambda w: w, ", level-normalised": level_normalised}
    per_fold: dict[str, list[dict]] = {name + v: [] for v in variants for name in CONDITIONS}
    t0 = time.time()
    only = None if args.folds is None else {int(f) for f in args.folds.split(",")}
    for fold in folds:
        if only is not None and fold.index not in only:
            continue
        ck = loop.load_checkpoint(args.run / f"fold_{fold.index}" / "checkpoint.pt")
        if ck is None:
            raise SystemExit(f"{args.run}/fold_{fold.index}: no checkpoint (train the recipe first)")
        model = build_model(recipe)
        model.load_state_dict(ck["model"])
        model.eval()
        waves = [read_audio(samples[i].path, SR) for i in fold.test]
        for name, corrupt in CONDITIONS.items():
            trimmed = [trim_silence(corrupt(w), settings["trim_db"]) for w in waves]
            for suffix, level in variants.items():
                mels = [log_mel(level(w), cfg).astype(np.float32) for w in trimmed]
                with torch.no_grad():
                    probs = predict(model, mels, length, hop)["probs"]
                scores = classification_scores(y[fold.test], probs.argmax(1), EMOTIONS)
                per_fold[name + suffix].append({"fold": fold.index, "accuracy": scores["accuracy"],
                                                "macro_f1": scores["macro_f1"]})
                print(f"fold {fold.index} {name + suffix:46s} accuracy {scores['accuracy']:.3f}", flush=True)
    rows = {name: {**summarize_folds(r, ("accuracy", "macro_f1")), "per_fold": r} for name, r in per_fold.items()}
    result = {"rows": rows, "run": str(args.run), "network": "one network per fold (seed 0), not the ensemble",
              "commit": loop.git_commit(), "seconds": time.time() - t0,
              "command": "python benchmarks/voice_channels.py"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.markdown:
        before = json.loads(args.before.read_text()) if args.before.is_file() else None
        replace_section(Path(args.markdown), BEGIN, END, render(result, before))
    print(f"wrote {args.out}" + (f" and the voice-channels section of {args.markdown}" if args.markdown else ""))


def render(result: dict, before: dict | None = None) -> str:
    clean = result["rows"]["clean (as recorded)"]["accuracy"]["mean"]
    old = (before or {}).get("rows", {})
    lines = [BEGIN, "## Voice model under a changed channel (RAVDESS, 6 actor-independent folds)", "",
             "Each fold's voice network (seed 0; the shipped ensemble averages two seeds) on its own held-out "
             "actors, with the test audio changed as a different microphone, line or codec would change it. "
             f"Command `{result['command']}`, commit `{result['commit']}`. Mean ± std over the 6 folds.", "",
             "| test audio | accuracy | macro-F1 | change in accuracy | per fold | before: accuracy |",
             "|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        acc, f1 = r["accuracy"], r["macro_f1"]
        per = ", ".join(f"{p['accuracy']:.3f}" for p in r["per_fold"])
        prev = f"{old[name]['accuracy']['mean']:.3f} ± {old[name]['accuracy']['std']:.3f}" if name in old else "–"
        lines.append(f"| {name} | {acc['mean']:.3f} ± {acc['std']:.3f} | {f1['mean']:.3f} ± {f1['std']:.3f} "
                     f"| {acc['mean'] - clean:+.3f} | {per} | {prev} |")
    if before:
        lines += ["", f"*Before*: the same measurement on `{before['run']}` (commit `{before['commit']}`), the "
                  "networks trained without gain augmentation (SpecAugment and mixup only)."]
    lines += ["", "The network's per-window normalisation (per-mel mean, global std) cancels a gain only above the "
              "log-mel floor: how far speech sits above that floor survives it. Without gain augmentation a "
              f"quieter input cost a quarter of the accuracy; scaling every utterance to {LEVEL_DB:.0f} dB at test "
              "time made it gain-proof but cost 8 points on clean speech, so the analyzer does not normalise the "
              "level. The recipes now train with a random level per example (`augment.gain_db`, exact in the "
              "log-mel domain: `avemo.training.voice.gain_augment`). Noise and the telephone band remain open.",
              "", END]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
