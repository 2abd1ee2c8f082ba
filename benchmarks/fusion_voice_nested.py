"""Nested voice predictions for the fusion benchmark: what the voice model looks like on data it never trained
on, from voice models that never saw the corpus (or the RAVDESS actors) the fusion is then tested on.

    AVEMO_CACHE=<cache with voice_multi/pooled_*_4369.npy> python benchmarks/fusion_voice_nested.py  # linear
    python benchmarks/fusion_voice_nested.py member attn_L4 [--jobs 2]   # another member of the shipped blend
    python benchmarks/fusion_voice_nested.py blend linear_L2-4_aug attn_L4   # -> voice_nested.csv.gz

The voice recipe is the shipped one (``voice.multi6``: Whisper base layers 2-4, mean+std pooled, linear head,
L2 1e-1, augmented copies; ``benchmarks/voice_crossdomain.py`` ``linear_L2-4_aug``), trained on the pooled
vectors that ``benchmarks/voice_features.py`` stored (read only; nothing is written to the cache). Three parts,
each row a held-out prediction (softmax over the 8 classes, temperature 1, like ``loco_probs_*.csv.gz``):

* ``loco``: for each tested corpus ``c`` and each other corpus ``d``: trained on the four corpora left, tested
  on ``d`` (the fusion for ``c`` learns from these);
* ``incorpus``: for each tested corpus ``c`` other than RAVDESS and each RAVDESS actor fold ``j``: trained on
  the other RAVDESS folds and the corpora other than ``c``, tested on fold ``j`` (the voice on its home ground);
* ``ravdess``: for each RAVDESS outer fold ``k`` and inner fold ``j != k``: trained on the RAVDESS folds other
  than ``k`` and ``j`` plus the five other corpora, tested on fold ``j`` (the AU + voice protocol's fusion for
  fold ``k`` learns from these; fold ``k``'s own predictions are ``loco_probs_linear_L2-4_aug_ravdess_folds``).

Output: ``benchmarks/results/fusion_crossdomain/voice_nested_<recipe>.csv.gz`` per member (columns outer, part,
corpus, path, speaker, label and the 8 probabilities) and ``voice_nested.csv.gz``, the shipped blend of them
(``benchmarks/voice_blend.py``), which the fusion and calm-bias scripts read.

    python benchmarks/fusion_voice_nested.py speech

writes ``voice_speech.csv.gz`` beside it: per clip of the six corpora, its duration and the share of it that
Silero VAD calls speech (the analyzer's ``speech_fraction``, with the analyzer's VAD settings).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from avemo.config import cache_root, data_root
from avemo.datasets.speech import SPEECH_CORPORA, label_sets, read_speech_corpora
from avemo.datasets.splits import ravdess_folds
from avemo.labels import EMOTIONS
from avemo.training import speech_heads as H

OUT = Path("benchmarks/results/fusion_crossdomain")
LAYERS = (0, 1, 2, 3, 4, 5, 6, "final")  # the pooled tables' layer axis (benchmarks/voice_crossdomain.py)
RECIPE_LAYERS = (2, 3, 4)
WEIGHT_DECAY = 1e-1


def tables(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The clean and augmented pooled vectors (n, 3072) of layers 2-4 (NaN rows: no augmented copy)."""
    folder = cache_root() / "voice_multi"
    out = []
    for condition in ("clean", "aug"):
        path = folder / f"pooled_{condition}_all_{n}.npy"
        if not path.is_file():
            sys.exit(f"{path}: missing; run benchmarks/voice_features.py and benchmarks/voice_crossdomain.py run "
                     "first, or point AVEMO_CACHE at a cache that has them")
        t = np.load(path, mmap_mode="r")
        out.append(np.concatenate([np.asarray(t[:, LAYERS.index(k)], np.float32) for k in RECIPE_LAYERS], axis=1))
    return out[0], out[1]


def fit_predict(xc: np.ndarray, xa: np.ndarray, y: np.ndarray, corpus: np.ndarray, sets: dict, tr: np.ndarray,
                te: np.ndarray) -> np.ndarray:
    """``linear_L2-4_aug`` trained on ``tr`` (plus their augmented copies), probabilities (T = 1) for ``te``."""
    has = tr[~np.isnan(xa[tr]).any(1)]
    x_tr = np.concatenate([xc[tr], xa[has]])
    y_tr, c_tr = np.concatenate([y[tr], y[has]]), np.concatenate([corpus[tr], corpus[has]])
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-3
    model = H.train_linear((x_tr - mu) / sd, y_tr, c_tr, sets, H.HeadConfig(weight_decay=WEIGHT_DECAY))
    z = H.linear_logits(model, (xc[te] - mu) / sd)
    z = z - z.max(1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(1, keepdims=True)


def nested_jobs(samples, corpus: np.ndarray) -> tuple[list[tuple[str, str, np.ndarray, np.ndarray]], list]:
    """The ``loco`` and ``incorpus`` parts as (outer, part, train index, test index), and the RAVDESS actor
    folds (index arrays into ``samples``)."""
    rav = np.flatnonzero(corpus == "ravdess")
    folds = [rav[f.test_idx] for f in ravdess_folds([samples[int(i)] for i in rav])]
    jobs = []
    for c in SPEECH_CORPORA:
        for d in SPEECH_CORPORA:
            if d != c:
                jobs.append((c, "loco", np.flatnonzero((corpus != c) & (corpus != d)), np.flatnonzero(corpus == d)))
        if c != "ravdess":
            for fj in folds:
                jobs.append((c, "incorpus", np.setdiff1d(np.flatnonzero(corpus != c), fj), fj))
    return jobs, folds


def all_jobs(samples, corpus: np.ndarray) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Every (outer, part, train index, test index) of the three parts."""
    jobs, folds = nested_jobs(samples, corpus)
    for k, fk in enumerate(folds):
        for j, fj in enumerate(folds):
            if j != k:
                jobs.append((f"ravdess_fold{k}", "ravdess", np.setdiff1d(np.arange(len(samples)),
                                                                         np.concatenate([fk, fj])), fj))
    return jobs


def _frame(samples, corpus: np.ndarray, outer: str, part: str, te: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    root = data_root()
    df = pd.DataFrame({"outer": outer, "part": part, "corpus": corpus[te],
                       "path": [str(samples[int(i)].path.relative_to(root)) for i in te],
                       "speaker": [samples[int(i)].speaker for i in te],
                       "label": [samples[int(i)].label for i in te]})
    for j, e in enumerate(EMOTIONS):
        df[e] = np.round(p[:, j], 5)
    return df


def main() -> None:
    torch.set_num_threads(1)
    samples = read_speech_corpora()
    sets = label_sets(samples)
    y = np.array([EMOTIONS.index(s.label) for s in samples])
    corpus = np.array([s.corpus for s in samples], dtype=object)
    xc, xa = tables(len(samples))
    jobs = all_jobs(samples, corpus)
    parts = []
    t0 = time.time()
    for n, (outer, part, tr, te) in enumerate(jobs):
        p = fit_predict(xc, xa, y, corpus, sets, tr, te)
        parts.append(_frame(samples, corpus, outer, part, te, p))
        acc = float(np.mean(np.where(np.stack([[e in sets[c] for e in EMOTIONS] for c in corpus[te]]), p, 0)
                            .argmax(1) == y[te]))
        print(f"[{n + 1}/{len(jobs)}] {outer} {part} {corpus[te[0]]}: train {len(tr)} test {len(te)} "
              f"acc {acc:.3f} ({time.time() - t0:.0f} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_csv(OUT / "voice_nested_linear_L2-4_aug.csv.gz", index=False)
    print(f"wrote {OUT / 'voice_nested_linear_L2-4_aug.csv.gz'}", flush=True)


# ------------------------------------------------------------------ another member of the blend (voice_blend.py)
_DATA: dict = {}


def _stored_loco(name: str, outer: str, tested: str) -> np.ndarray | None:
    """Member ``name``'s probabilities on corpus ``tested`` trained without ``outer`` and ``tested``, from
    ``voice_nested_ensemble.py``'s stored inner predictions (the same training and test sets), if there."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from voice_nested_ensemble import MEMBERS as ENSEMBLE_MEMBERS
    from voice_nested_ensemble import OUT as ENSEMBLE_OUT

    short = {v: k for k, v in ENSEMBLE_MEMBERS.items()}.get(name)
    path = ENSEMBLE_OUT / f"{short}__{outer}.npz"
    if not (short and path.is_file()):
        return None
    lp = np.load(path)[tested]
    return np.exp(lp) / np.exp(lp).sum(1, keepdims=True)


def _member_job(args: tuple[str, int]) -> tuple[int, np.ndarray]:
    """Job ``n`` of :func:`all_jobs` for recipe ``name`` of ``voice_crossdomain.py``: probabilities (T = 1)."""
    from voice_crossdomain import Data, recipes
    from voice_crossdomain import fit_predict as fit_member

    torch.set_num_threads(1)
    name, n = args
    if "data" not in _DATA:
        _DATA["data"] = Data()
    data = _DATA["data"]
    outer, part, tr, te = all_jobs(data.samples, data.corpus)[n]
    if part == "loco" and (p := _stored_loco(name, outer, data.corpus[te[0]])) is not None:
        return n, p
    z = fit_member(recipes()[name], data, tr, te)
    z = z - z.max(1, keepdims=True)
    return n, np.exp(z) / np.exp(z).sum(1, keepdims=True)


def member(name: str, jobs_n: int) -> None:
    """The three parts for member ``name``; the ``loco`` part taken from ``voice_nested_ensemble.py``'s stored
    inner predictions where they exist (asked for last, so a run beside that one finds them). Resumes from
    ``.partial`` files."""
    from concurrent.futures import ProcessPoolExecutor

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    samples = read_speech_corpora()
    corpus = np.array([s.corpus for s in samples], dtype=object)
    jobs = all_jobs(samples, corpus)
    part_dir = OUT / f"voice_nested_{name}.partial"
    part_dir.mkdir(parents=True, exist_ok=True)
    todo = sorted(((name, n) for n in range(len(jobs)) if not (part_dir / f"{n}.npy").is_file()),
                  key=lambda job: jobs[job[1]][1] == "loco")
    t0 = time.time()
    print(f"{name}: {len(jobs) - len(todo)} of {len(jobs)} jobs stored, {len(todo)} to do", flush=True)
    with ProcessPoolExecutor(max_workers=jobs_n) as pool:
        for k, (n, p) in enumerate(pool.map(_member_job, todo)):
            np.save(part_dir / f"{n}.npy", p)
            print(f"[{k + 1}/{len(todo)}] job {n} {jobs[n][0]} {jobs[n][1]} ({time.time() - t0:.0f} s)", flush=True)
    parts = [_frame(samples, corpus, outer, part, te, np.load(part_dir / f"{n}.npy"))
             for n, (outer, part, _tr, te) in enumerate(jobs)]
    pd.concat(parts, ignore_index=True).to_csv(OUT / f"voice_nested_{name}.csv.gz", index=False)
    shutil.rmtree(part_dir)
    print(f"wrote {OUT / f'voice_nested_{name}.csv.gz'}", flush=True)


def blend(names: list[str]) -> None:
    """``voice_nested.csv.gz``, what the fusion and calm-bias scripts read: the members' rows blended as the
    shipped head blends them (``voice_blend.blend_rows``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from voice_blend import blend_rows

    tables = [pd.read_csv(OUT / f"voice_nested_{n}.csv.gz") for n in names]
    blend_rows(tables, ["outer", "part", "path"]).to_csv(OUT / "voice_nested.csv.gz", index=False)
    print(f"wrote {OUT / 'voice_nested.csv.gz'}: blend of {', '.join(names)}")


def speech() -> None:
    """Duration and VAD speech share of every clip (the analyzer's segments and ``speech_fraction``)."""
    from avemo.audio import VoiceActivityDetector, speech_fraction
    from avemo.media import read_audio

    samples = read_speech_corpora()
    vad = VoiceActivityDetector()
    root = data_root()
    rows = []
    t0 = time.time()
    for n, s in enumerate(samples):
        wave = read_audio(s.path, sample_rate=16000)
        duration = len(wave) / 16000
        rows.append({"path": str(s.path.relative_to(root)), "duration": round(duration, 3),
                     "speech_fraction": round(speech_fraction(vad.segments(wave), 0.0, duration), 4)})
        if n % 500 == 0:
            print(f"{n}/{len(samples)} ({time.time() - t0:.0f} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(OUT / "voice_speech.csv.gz", index=False)
    print(f"wrote {OUT / 'voice_speech.csv.gz'}", flush=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", default="linear", choices=("linear", "speech", "member", "blend"))
    ap.add_argument("names", nargs="*", help="member: one recipe of voice_crossdomain.py; blend: the members")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    if args.command == "speech":
        speech()
    elif args.command == "member":
        member(args.names[0], args.jobs)
    elif args.command == "blend":
        blend(args.names)
    else:
        main()
