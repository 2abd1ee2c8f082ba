"""Do prosodic features add to the Whisper voice model on corpora left out? (issue #10, point 2: "any other
offline encoder you find worth it")

Pitch, loudness and spectral shape are the classic cues of vocal arousal and are thought to travel across
languages better than what a speech-recognition encoder learns. Per clip, functionals (mean, std, 10th / 50th /
90th percentile, range, slope) of: f0 in semitones about the clip's own median (librosa's YIN, voiced frames),
level in dB below the clip's peak, log spectral centroid, flatness and roll-off, spectral flux and zero-crossing
rate over active frames; the voiced share, a syllable-rate proxy (level peaks per active second) and the median
f0 (``--relative-only`` leaves out the features a speaker, a microphone or a room sets: median f0, centroid,
roll-off, flatness, zero-crossing rate).

Leave one corpus out over the six shared corpora (as ``voice_crossdomain.py``): a logistic regression on the
standardised functionals, each training corpus and each of its classes weighing the same; UAR over the held-out
corpus's own classes. Then the shipped blend's stored leave-one-corpus-out probabilities
(``loco_probs_linear_L2-4_aug+attn_L3+attn_L4.csv.gz``) log-pooled with the prosody member at weights 0.1-0.5.
The weights are reported, not chosen: a gain would then need a nested choice.

    python benchmarks/voice_prosody.py            # features (about 1 min on 2 cores), folds -> prosody.json
    python benchmarks/voice_prosody.py --render   # the BENCHMARKS.md section from prosody.json
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from avemo.datasets.speech import read_speech_corpora
from avemo.labels import EMOTIONS
from avemo.provenance import git_commit, machine

RESULTS = Path(__file__).resolve().parent / "results" / "voice_multi"
OUT = RESULTS / "prosody.json"
BLEND = RESULTS / "loco_probs_linear_L2-4_aug+attn_L3+attn_L4.csv.gz"
BEGIN, END = "<!-- voice-prosody:begin -->", "<!-- voice-prosody:end -->"
SR, HOP = 16000, 160
WEIGHTS = (0.1, 0.2, 0.3, 0.5)
ABSOLUTE = ("lf0", "cent", "roll", "flat", "zcr")  # set by the speaker, the microphone or the room


def _stats(x: np.ndarray, prefix: str) -> dict[str, float]:
    x = x[np.isfinite(x)]
    keys = ("mean", "std", "p10", "p50", "p90", "range", "slope")
    if len(x) < 2:
        return {f"{prefix}_{k}": 0.0 for k in keys}
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    slope = float(np.polyfit(np.arange(len(x)), x, 1)[0])
    return dict(zip((f"{prefix}_{k}" for k in keys), (x.mean(), x.std(), p10, p50, p90, p90 - p10, slope)))


def functionals(path: str) -> dict[str, float]:
    """The clip's prosodic and spectral functionals (see the module's docstring)."""
    import librosa
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(1)
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    y = y / (np.abs(y).max() + 1e-9)
    db = 20 * np.log10(librosa.feature.rms(y=y, frame_length=400, hop_length=HOP)[0] + 1e-6)
    f0 = librosa.yin(y, fmin=60, fmax=600, sr=SR, frame_length=1024, hop_length=HOP)
    n = min(len(f0), len(db))
    f0, db = f0[:n], db[:n]
    active = db > db.max() - 35
    lf0 = np.log2(f0)
    voiced = active & np.r_[False, np.abs(np.diff(lf0)) < 0.1] & (f0 > 65) & (f0 < 590)
    median = float(np.median(lf0[voiced])) if voiced.sum() > 2 else float("nan")
    spec = np.abs(librosa.stft(y, n_fft=512, hop_length=HOP))[:, :n]
    out = {"voiced_ratio": float(voiced.mean() / max(active.mean(), 1e-6)), "active_ratio": float(active.mean()),
           "lf0_median": 0.0 if np.isnan(median) else median}
    out.update(_stats(12 * (lf0[voiced] - median), "f0st"))
    out.update(_stats(db[active] - db[active].max(), "db"))
    for name, v in (("cent", np.log(librosa.feature.spectral_centroid(S=spec, sr=SR)[0] + 1)),
                    ("flat", np.log(librosa.feature.spectral_flatness(S=spec)[0] + 1e-6)),
                    ("roll", np.log(librosa.feature.spectral_rolloff(S=spec, sr=SR)[0] + 1)),
                    ("flux", np.r_[0, np.sqrt((np.diff(np.log(spec + 1e-6), axis=1) ** 2).mean(0))]),
                    ("zcr", librosa.feature.zero_crossing_rate(y, frame_length=400, hop_length=HOP)[0][:n])):
        out.update(_stats(v[active], name))
    peaks = librosa.util.peak_pick(db, pre_max=5, post_max=5, pre_avg=10, post_avg=10, delta=3, wait=8)
    out["peaks_per_s"] = len(peaks) / max(active.sum() * HOP / SR, 0.1)
    return out


def features() -> pd.DataFrame:
    samples = read_speech_corpora()
    with ProcessPoolExecutor(2) as ex:
        rows = list(ex.map(functionals, [str(s.path) for s in samples], chunksize=32))
    df = pd.DataFrame(rows)
    key = [str(s.path).split("datasets/")[-1] for s in samples]
    return pd.concat([pd.DataFrame({"path": key, "corpus": [s.corpus for s in samples],
                                    "label": [s.label for s in samples]}), df], axis=1)


def _uar(scores: np.ndarray, y: np.ndarray, classes: list[int]) -> float:
    pred = np.array(classes)[scores[:, classes].argmax(1)]
    return float(np.mean([np.mean(pred[y == k] == k) for k in classes]))


def loco(df: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Leave-one-corpus-out probabilities ``(N, 8)`` of a balanced logistic regression on ``columns``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = df[columns].to_numpy(np.float64)
    y = df.label.map(EMOTIONS.index).to_numpy()
    corpus = df.corpus.to_numpy()
    out = np.full((len(df), len(EMOTIONS)), 1e-6)
    for held in np.unique(corpus):
        tr, te = corpus != held, corpus == held
        w = np.zeros(tr.sum())
        for c in np.unique(corpus[tr]):
            ks = np.unique(y[tr][corpus[tr] == c])
            for k in ks:  # each corpus, and each class within it, weighs the same
                m = (corpus[tr] == c) & (y[tr] == k)
                w[m] = 1.0 / m.sum() / len(ks)
        scaler = StandardScaler().fit(x[tr])
        model = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x[tr]), y[tr],
                                                             sample_weight=w * len(w) / w.sum())
        out[np.ix_(te, model.classes_)] = model.predict_proba(scaler.transform(x[te]))
    return out


def run() -> dict:
    t0 = time.time()
    df = features()
    blend = pd.read_csv(BLEND).set_index("path").loc[df.path].reset_index()
    if not (blend.label.to_numpy() == df.label.to_numpy()).all():
        raise SystemExit(f"{BLEND}: its clips do not match the corpora's")
    y = df.label.map(EMOTIONS.index).to_numpy()
    corpus = df.corpus.to_numpy()
    every = [c for c in df.columns if c not in ("path", "corpus", "label")]
    sets = {"all": every, "relative_only": [c for c in every if not c.startswith(ABSOLUTE)]}
    shipped = blend[list(EMOTIONS)].to_numpy(np.float64)
    res: dict = {"features": {k: len(v) for k, v in sets.items()}, "rows": {}}
    for name, cols in sets.items():
        p = loco(df, cols)
        per = {}
        for c in np.unique(corpus):
            te = corpus == c
            classes = sorted(set(y[te]))
            row = {"prosody": _uar(p[te], y[te], classes), "shipped": _uar(shipped[te], y[te], classes)}
            for w in WEIGHTS:
                pooled = np.log(np.clip(shipped[te], 1e-9, 1)) + w * np.log(np.clip(p[te], 1e-9, 1))
                row[f"pooled_{w}"] = _uar(pooled, y[te], classes)
            per[str(c)] = row
        res["rows"][name] = per
    res.update({"commit": git_commit(), "machine": machine(), "minutes": (time.time() - t0) / 60,
                "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "command": "python benchmarks/voice_prosody.py"})
    OUT.write_text(json.dumps(res, indent=1))
    return res


def render(path: Path) -> None:
    from avemo.markdown import replace_section

    res = json.loads(OUT.read_text())
    cols = ["prosody", "shipped"] + [f"pooled_{w}" for w in WEIGHTS]
    lines = [BEGIN, "## Voice: prosodic features as another member (issue #10; not adopted)", "",
             f"`{res['command']}` (commit `{res['commit']}`, {res['date']}). Per clip, functionals of f0 (semitones "
             "about the clip's median), level, spectral shape, flux, zero-crossing rate, voiced share and a rate "
             "proxy (librosa), a balanced logistic regression leave one corpus out, alone and log-pooled with the "
             "shipped blend's stored leave-one-corpus-out probabilities at weight w (reported, not chosen). UAR % "
             "over the held-out corpus's own classes.", ""]
    for name, per in res["rows"].items():
        lines += [f"**{name.replace('_', ' ')}** ({res['features'][name]} features)", "",
                  "| held-out corpus | prosody alone | shipped blend | " +
                  " | ".join(f"pooled, w {w}" for w in WEIGHTS) + " |", "|---" * (len(cols) + 1) + "|"]
        for c, row in per.items():
            lines.append(f"| {c} | " + " | ".join(f"{100 * row[k]:.1f}" for k in cols) + " |")
        mean = {k: np.mean([row[k] for row in per.values()]) for k in cols}
        lines += ["| **mean** | " + " | ".join(f"**{100 * mean[k]:.1f}**" for k in cols) + " |", ""]
    lines += ["Alone the functionals are far below the Whisper members (SAVEE and RAVDESS near chance); pooled "
              "with them they lower the mean or, without the absolute features, raise it by a tenth at most (a weight "
              "picked here, on the test corpora, is no nested choice): not adopted.",
              "", END]
    replace_section(path, BEGIN, END, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--render", type=Path, nargs="?", const=Path("BENCHMARKS.md"), default=None,
                    help="write the BENCHMARKS.md section from prosody.json and stop")
    args = ap.parse_args()
    if args.render is not None:
        render(args.render)
        return
    res = run()
    for name, per in res["rows"].items():
        print(name, {k: round(100 * float(np.mean([r[k] for r in per.values()])), 1) for k in next(iter(per.values()))})


if __name__ == "__main__":
    main()
