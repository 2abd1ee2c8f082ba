"""The frame-level reviewed systems, the fusion systems and the shipped defaults on the paired audio-visual set.

The set (:mod:`avemo.datasets.paired`): FER-2013 faces made into short face sequences, each paired with a real
speech clip of the same class from the six shared speech corpora, split by speaker. Every system is trained on
the training pairs for a fixed wall-clock budget, its best epoch chosen on the selection pairs (val accuracy),
and scored on the test pairs: both modalities, face only, voice only.

    python benchmarks/paired_systems.py build             # manifest (committed) + arrays (cache)
    python benchmarks/paired_systems.py train NAME        # one system -> results/paired_systems/NAME.json
    python benchmarks/paired_systems.py train NAME --budget-min 30   # the longer budget -> NAME__30min.json
    python benchmarks/paired_systems.py late              # calibrated late fusion of the two unimodal CNNs
    python benchmarks/paired_systems.py defaults          # face.fervideo + voice.multi6 + fusion bundle
    python benchmarks/paired_systems.py render            # the BENCHMARKS.md section from the stored JSON

Run every long step under ``nice -n 10`` with ``OMP_NUM_THREADS=1`` (the script uses one torch thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from avemo.config import cache_root, data_root
from avemo.datasets.paired import LABELS, Jitter

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "paired_systems"
MANIFEST = RESULTS / "manifest.csv"
SEED = 0
JITTER = Jitter()
TRIM_DB = 30.0


def work_dir() -> Path:
    return cache_root() / "paired_systems" / f"seed{SEED}"


def arrays_path() -> Path:
    return work_dir() / "arrays.npz"


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def provenance() -> dict[str, Any]:
    from avemo.provenance import git_commit, machine

    return {"commit": git_commit(), "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


# -- build -------------------------------------------------------------------------------------------------------

def build() -> None:
    from collections import Counter

    from avemo.datasets.fer2013 import read_fer2013
    from avemo.datasets.paired import build_arrays, build_pairs, write_manifest
    from avemo.datasets.speech import read_speech_corpora

    root = data_root()
    speech = read_speech_corpora(root=root)
    faces = list(read_fer2013(root / "fer2013"))
    pairs = build_pairs(speech, faces, root=root, seed=SEED)
    write_manifest(pairs, MANIFEST)
    say(f"{len(pairs)} pairs -> {MANIFEST}")
    build_arrays(pairs, root, arrays_path(), jitter=JITTER, trim_db=TRIM_DB, log=say)
    summary = {
        "seed": SEED, "jitter": JITTER.__dict__, "trim_db": TRIM_DB, "labels": list(LABELS),
        "pairs": dict(Counter(p.split for p in pairs)),
        "clips": {s: len({p.clip for p in pairs if p.split == s}) for s in ("train", "val", "test")},
        "faces": {s: len({p.face for p in pairs if p.split == s}) for s in ("train", "val", "test")},
        "faces_reused": dict(Counter(p.split for p in pairs if p.face_reused)),
        "speakers": {s: sorted({p.clip_speaker for p in pairs if p.split == s}) for s in ("train", "val", "test")},
        "per_class": {s: dict(Counter(p.label for p in pairs if p.split == s)) for s in ("train", "val", "test")},
        "per_corpus": {s: dict(Counter(p.clip_corpus for p in pairs if p.split == s))
                       for s in ("train", "val", "test")},
        "command": "python benchmarks/paired_systems.py build", **provenance(),
    }
    (RESULTS / "set.json").write_text(json.dumps(summary, indent=2) + "\n")
    say(f"arrays -> {arrays_path()}")


# -- the systems and their budgets ---------------------------------------------------------------------------

#: Audio window (log-mel frames, 2 s) the systems see; test-time mean over windows every 1 s.
WINDOW, HOP = 200, 100
#: Wall-clock training budget per system (minutes, one CPU thread), fixed before any run; epochs is an upper bound.
BUDGET_MIN = 8.0
MAX_EPOCHS = 40

#: name -> registered model, kwargs (the recipes' ``ablation:`` widths), visual input, what it is.
SYSTEMS: dict[str, dict[str, Any]] = {
    "mocanu2023_cma": {
        "model": "mocanu2023_cma", "video": "faces", "lr": 3e-4,
        "kwargs": {"width": 8, "layers": [1, 1, 1, 1], "snippets": 4, "dim": 64, "heads": 4, "embed_dim": 64,
                   "dropout": 0.2, "triplet_weight": 1.0, "constraint_weight": 1.0},
        "about": "cross-modal attention, 3D/2D ResNet-18 streams, emotion-constrained triplet loss on"},
    "mocanu2023_cma_no_triplet": {
        "model": "mocanu2023_cma", "video": "faces", "lr": 3e-4,
        "kwargs": {"width": 8, "layers": [1, 1, 1, 1], "snippets": 4, "dim": 64, "heads": 4, "embed_dim": 64,
                   "dropout": 0.2, "triplet_weight": 0.0, "constraint_weight": 0.0},
        "about": "the same network, cross-entropy only (triplet loss off)"},
    "akturk2024_onn": {
        "model": "akturk2024_onn", "video": "keyframe", "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32, 32], "q": 3, "fused_dim": 64},
        "about": "two-branch Self-ONN: key frame of the sequence (select_key_frames) + log-mel"},
    "akturk2024_onn_face": {
        "model": "akturk2024_onn_face", "video": "keyframe", "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32, 32], "q": 3, "fused_dim": 64},
        "about": "single branch: the key-frame Self-ONN alone"},
    "akturk2024_onn_voice": {
        "model": "akturk2024_onn_voice", "video": None, "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32, 32], "q": 3, "fused_dim": 64},
        "about": "single branch: the log-mel Self-ONN alone"},
    "zhang2016_cnnrnn": {
        "model": "zhang2016_cnnrnn", "video": "faces", "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32], "hidden": 64, "fused_dim": 64, "slice_frames": 50},
        "about": "CNN per frame / 0.5 s spectrogram slice, LSTM per modality, MLP fusion"},
    "dixit2024_cnn": {
        "model": "dixit2024_cnn", "video": "faces", "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32], "hidden": 64},
        "about": "decision fusion: face CNN + audio CNN, averaged class probabilities (WeightedDecisionFusion)"},
    "dixit2024_cnn_early": {
        "model": "dixit2024_cnn_early", "video": "faces", "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32], "hidden": 64},
        "about": "early fusion: the same CNNs, concatenated features, one classifier (ConcatFusion)"},
    "dixit2024_cnn_video": {
        "model": "dixit2024_cnn_video", "video": "faces", "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32], "hidden": 64},
        "about": "face CNN alone (a member of the late fusion)"},
    "dixit2024_cnn_audio": {
        "model": "dixit2024_cnn_audio", "video": None, "lr": 1e-3,
        "kwargs": {"widths": [8, 16, 32], "hidden": 64},
        "about": "audio CNN alone (a member of the late fusion)"},
}


class PairedData:
    """The arrays of the paired set, indexable by pair."""

    def __init__(self, path: Path | None = None) -> None:
        z = np.load(path or arrays_path())
        self.video, self.key, self.y = z["video"], z["key"].astype(np.int64), z["y"]
        self.split, self.clip_index = z["split"], z["clip_index"]
        self.mel, self.mel_len = z["mel"], z["mel_len"]

    def idx(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def mel_of(self, i: int) -> np.ndarray:
        c = int(self.clip_index[i])
        return self.mel[c, :, :int(self.mel_len[c])].astype(np.float32)

    def visual(self, i: int, mode: str | None, flip: bool = False) -> np.ndarray | None:
        """``(T, 1, 48, 48)`` the sequence (``faces``) or ``(1, 1, 48, 48)`` its key frame, in [0, 1]."""
        if mode is None:
            return None
        v = self.video[i] if mode == "faces" else self.video[i, self.key[i]][None]
        if flip:
            v = v[..., ::-1]
        return (v.astype(np.float32) / 255.0)[:, None]


def make_task(name: str, data: PairedData, subset: np.ndarray | None = None, batch_size: int = 32) -> Any:
    """The :class:`~avemo.training.trainer.TrainingTask` of system ``name`` on the training pairs (or ``subset``)."""
    import torch

    import avemo.models.systems  # noqa: F401  (registers the systems)
    from avemo.models.registry import create_model, model_info
    from avemo.training.systems import collate
    from avemo.training.trainer import TrainingTask
    from avemo.training.voice import random_window, spec_augment

    cfg = SYSTEMS[name]
    mods = model_info(cfg["model"]).modalities
    train_idx = data.idx("train") if subset is None else subset
    val_idx = data.idx("val")

    class Task(TrainingTask):
        def build_model(self) -> torch.nn.Module:
            frames = data.video.shape[1] if cfg["video"] == "faces" else 1
            return create_model(cfg["model"], labels=LABELS, label_smoothing=0.1, n_mels=64, audio_frames=WINDOW,
                                video_frames=frames, face_size=48, **cfg["kwargs"])

        def steps_per_epoch(self) -> int:
            return len(train_idx) // batch_size

        def batches(self, epoch: int, gen: torch.Generator, rng: np.random.Generator) -> Any:
            order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
            for b in range(self.steps_per_epoch()):
                idx = order[b * batch_size:(b + 1) * batch_size]
                items = []
                for i in idx:
                    item = {}
                    if "audio" in mods:
                        item["audio"] = random_window(data.mel_of(int(i)), WINDOW, rng)
                    v = data.visual(int(i), cfg["video"], flip=bool(rng.random() < 0.5))
                    if v is not None:
                        item["video"] = np.ascontiguousarray(v)
                    items.append(item)
                x = collate(items)
                if "audio" in x:
                    x["audio"] = spec_augment(x["audio"], gen, freq=8, time=20, n=1)
                yield x, torch.from_numpy(data.y[idx])

        def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, int, int]:
            x, target = batch
            out = model(**x)
            return model.loss(out, target).float(), int((out["logits"].argmax(1) == target).sum()), len(target)

        def validate(self, model: torch.nn.Module) -> dict[str, float]:
            probs = predict(model, data, val_idx, cfg["video"], mods)
            return {"val_acc": float((probs.argmax(1) == data.y[val_idx]).mean())}

    return Task()


def predict(model: Any, data: PairedData, idx: np.ndarray, video: str | None, use: tuple[str, ...],
            batch: int = 64) -> np.ndarray:
    """Per pair: the mean softmax over its 2 s log-mel windows every 1 s (each with the whole face input), with
    only the modalities in ``use`` given."""
    import torch

    from avemo.training.systems import collate
    from avemo.training.voice import eval_windows

    was = model.training
    model.eval()
    items, owner = [], []
    for k, i in enumerate(idx.tolist()):
        wins = eval_windows(data.mel_of(i), WINDOW, HOP) if "audio" in use else [None]
        v = data.visual(i, video) if "video" in use else None
        for w in wins:
            item = {}
            if w is not None:
                item["audio"] = w
            if v is not None:
                item["video"] = v
            items.append(item)
            owner.append(k)
    probs = []
    with torch.no_grad():
        for s in range(0, len(items), batch):
            probs.append(torch.softmax(model(**collate(items[s:s + batch]))["logits"], -1).numpy())
    model.train(was)
    p, o = np.concatenate(probs), np.asarray(owner)
    return np.stack([p[o == k].mean(0) for k in range(len(idx))])


def scores(probs: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    from avemo.training.metrics import classification_scores

    return classification_scores(y, probs.argmax(1), LABELS)


def run_name(name: str, seed: int, budget_min: float = BUDGET_MIN) -> str:
    """A run's name: the system's, with ``__seed<k>`` for a training seed other than 0 and ``__<m>min`` for a
    budget other than :data:`BUDGET_MIN`."""
    run = name if seed == 0 else f"{name}__seed{seed}"
    return run if budget_min == BUDGET_MIN else f"{run}__{budget_min:g}min"


def train(name: str, budget_min: float = BUDGET_MIN, seed: int = 0) -> None:
    """Train system ``name`` (training seed ``seed``; the set itself is always seed :data:`SEED`), score it on
    the test pairs (both, face only, voice only) and the shared clips, and store the result."""
    import torch

    from avemo.models.registry import model_info
    from avemo.training.recipe import Optim, Train
    from avemo.training.trainer import Trainer

    torch.set_num_threads(1)
    cfg = SYSTEMS[name]
    data = PairedData()
    task = make_task(name, data)
    run = run_name(name, seed, budget_min)
    out = work_dir() / "runs" / run
    t0 = time.time()
    model = Trainer(task, optim=Optim(lr=cfg["lr"], weight_decay=1e-4, batch_size=32, label_smoothing=0.1),
                    train=Train(epochs=MAX_EPOCHS, warmup_epochs=1.0, time_budget_min=budget_min, val_every=1,
                                select="best", threads=1),
                    out_dir=out, seed=(seed,), log=say).fit()
    seconds = time.time() - t0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    mods = model_info(cfg["model"]).modalities
    variants = {"both": mods} if len(mods) == 2 else {}
    variants.update({"face": ("video",), "voice": ("audio",)})
    result: dict[str, Any] = {"system": name, "train_seed": seed, "model": cfg["model"], "kwargs": cfg["kwargs"],
                              "about": cfg["about"],
                              "visual_input": cfg["video"], "modalities": list(mods),
                              "n_params": int(sum(p.numel() for p in model.parameters())),
                              "budget_min": budget_min, "epochs_run": len(log),
                              "best_epoch": max(log, key=lambda r: r.get("val_acc", -1)).get("epoch"),
                              "train_seconds": sum(r.get("seconds", 0) for r in log), "session_seconds": seconds,
                              "lr": cfg["lr"], "window_frames": WINDOW, "log": log}
    preds: dict[str, np.ndarray] = {}
    for variant, use in variants.items():
        if not set(use) <= set(mods):
            continue
        for split in ("val", "test"):
            idx = data.idx(split)
            preds[f"{split}_{variant}"] = predict(model, data, idx, cfg["video"], tuple(use))
        result.setdefault("test", {})[variant] = scores(preds[f"test_{variant}"], data.y[data.idx("test")])
        result.setdefault("val", {})[variant] = scores(preds[f"val_{variant}"], data.y[data.idx("val")])
        say(f"{name} {variant}: test accuracy {result['test'][variant]['accuracy']:.3f}, "
            f"UAR {result['test'][variant]['uar']:.3f}")
    np.savez(out / "predictions.npz", **preds)
    result["clips"] = clip_predictions(model, cfg, mods)
    args = (f" --seed {seed}" if seed else "") + (f" --budget-min {budget_min:g}" if budget_min != BUDGET_MIN else "")
    result.update(command=f"python benchmarks/paired_systems.py train {name}{args}", **provenance())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{run}.json").write_text(json.dumps(result, indent=1) + "\n")
    say(f"-> {RESULTS / (run + '.json')}")


# -- the shared talking-face clips (a sanity check, not a score) -------------------------------------------------

#: The shared clips with a face and a voice: (video, audio, label).
CLIPS: tuple[tuple[str, str, str], ...] = (
    ("clips/cremad/1001_DFA_ANG_XX.flv", "clips/cremad/1001_DFA_ANG_XX.flv", "angry"),
    ("clips/cremad/1001_DFA_HAP_XX.flv", "clips/cremad/1001_DFA_HAP_XX.flv", "happy"),
    ("clips/cremad/1001_DFA_SAD_XX.flv", "clips/cremad/1001_DFA_SAD_XX.flv", "sad"),
    ("clips/ravdess/01-01-08-02-01-01-19.mp4", "clips/ravdess/03-01-08-02-01-01-19.wav", "surprised"),
)


def clip_inputs() -> list[dict[str, Any]]:
    """Per shared clip: ``frames`` (T, 48, 48) grey face crops (T = the set's sequence length, evenly spaced over
    the frames where a face was found), ``key`` (its key frame) and ``mel`` (the trimmed log-mel); cached."""
    from avemo.datasets.paired import clip_logmel
    from avemo.faces import scan_video, select_key_frames

    path = work_dir() / "clips.npz"
    if path.is_file():
        z = np.load(path, allow_pickle=False)
        return [{"video": v, "label": lab, "frames": z[f"frames{i}"], "key": int(z[f"key{i}"]), "mel": z[f"mel{i}"],
                 "found": int(z[f"found{i}"])} for i, (v, _, lab) in enumerate(CLIPS)]
    out, arrays = [], {}
    for i, (video, audio, label) in enumerate(CLIPS):
        scanned = scan_video(data_root() / video, fps=5.0, size=48, grey=True)
        crops = [f.main_crop if f.main_crop.ndim == 2 else f.main_crop[..., 0] for f in scanned
                 if f.main_crop is not None]
        pick = np.linspace(0, len(crops) - 1, JITTER.frames).round().astype(int)
        frames = np.stack([crops[j] for j in pick]).astype(np.uint8)
        key = int(select_key_frames(list(frames), k=1).indices[0])
        mel = clip_logmel(data_root() / audio, trim_db=TRIM_DB)
        arrays.update({f"frames{i}": frames, f"key{i}": key, f"mel{i}": mel, f"found{i}": len(crops)})
        out.append({"video": video, "label": label, "frames": frames, "key": key, "mel": mel, "found": len(crops)})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return out


def clip_predictions(model: Any, cfg: dict[str, Any], mods: tuple[str, ...]) -> list[dict[str, Any]]:
    import torch

    from avemo.training.voice import eval_windows

    model.eval()
    rows = []
    for c in clip_inputs():
        x: dict[str, torch.Tensor] = {}
        if "audio" in mods:
            x["audio"] = torch.from_numpy(eval_windows(c["mel"], WINDOW, HOP))
        n = len(x["audio"]) if "audio" in x else 1
        if cfg["video"] is not None and "video" in mods:
            v = c["frames"] if cfg["video"] == "faces" else c["frames"][c["key"]][None]
            v = torch.from_numpy((v.astype(np.float32) / 255.0)[:, None])
            x["video"] = v[None].expand(n, *v.shape).contiguous()
        with torch.no_grad():
            p = torch.softmax(model(**x)["logits"], -1).mean(0).numpy()
        rows.append({"clip": c["video"], "label": c["label"], "predicted": LABELS[int(p.argmax())],
                     "probability": float(p.max()), "probs": [round(float(v), 5) for v in p],
                     "face_frames_found": c["found"]})
    return rows


# -- late fusion of the two unimodal CNNs, and the shipped defaults --------------------------------------------

def _basic7(probs: np.ndarray) -> np.ndarray:
    """Probabilities over EMOTIONS -> over the set's seven classes (calm left out, renormalised)."""
    from avemo.labels import EMOTIONS

    q = np.asarray(probs, dtype=np.float64)[:, [EMOTIONS.index(c) for c in LABELS]]
    return q / np.clip(q.sum(1, keepdims=True), 1e-12, None)


def late(seed: int = 0) -> None:
    """avemo's calibrated late fusion (:class:`avemo.models.fusion.late.LateFusion`) over the separately trained
    face CNN and audio CNN: a temperature per modality and the pool's weights fitted on the selection pairs."""
    from avemo.models.fusion.late import LateFusion
    from avemo.training.fusion import fit_temperature, fit_weights, log_softmax

    data = PairedData()
    runs = work_dir() / "runs"
    members_run = [run_name("dixit2024_cnn_video", seed), run_name("dixit2024_cnn_audio", seed)]
    face = np.load(runs / members_run[0] / "predictions.npz")
    voice = np.load(runs / members_run[1] / "predictions.npz")
    yv, yt = data.y[data.idx("val")], data.y[data.idx("test")]
    logs = {m: np.log(np.clip(p, 1e-4, None)) for m, p in (("face", face["val_face"]), ("voice", voice["val_voice"]))}
    temps = {m: fit_temperature(lp, yv) for m, lp in logs.items()}
    cal = [log_softmax(logs[m] / temps[m]) for m in ("face", "voice")]
    w = fit_weights(cal, yv, grid=[0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
    weights = dict(zip(("face", "voice"), w, strict=True))
    fusion = LateFusion(modalities=("face", "voice"), temperatures=temps, weights=weights)
    lab = {"face": LABELS, "voice": LABELS}
    result: dict[str, Any] = {"system": "late_fusion", "train_seed": seed, "temperatures": temps, "weights": weights,
                              "members": ["dixit2024_cnn_video", "dixit2024_cnn_audio"],
                              "selection": "temperatures (NLL) and weights (NLL, grid 0-2) on the selection pairs"}
    for split, y, key in (("val", yv, "val"), ("test", yt, "test")):
        f, v = face[f"{key}_face"], voice[f"{key}_voice"]
        out = {"both": fusion.fuse({"face": f, "voice": v}, labels=lab), "face": fusion.fuse({"face": f}, labels=lab),
               "voice": fusion.fuse({"voice": v}, labels=lab)}
        result[split] = {k: scores(_basic7(p), y) for k, p in out.items()}
    members = [json.loads((RESULTS / f"{n}.json").read_text()) for n in members_run]
    rows = []
    for cf, cv in zip(members[0]["clips"], members[1]["clips"], strict=True):
        p = fusion.fuse({"face": np.array([cf["probs"]]), "voice": np.array([cv["probs"]])}, labels=lab)
        q = _basic7(p)[0]
        rows.append({"clip": cf["clip"], "label": cf["label"], "predicted": LABELS[int(q.argmax())],
                     "probability": float(q.max())})
    result["clips"] = rows
    result["budget_min"] = sum(m["budget_min"] for m in members)
    result["n_params"] = sum(m["n_params"] for m in members)
    result["epochs_run"] = " + ".join(str(m["epochs_run"]) for m in members)
    result.update(command="python benchmarks/paired_systems.py late" + (f" --seed {seed}" if seed else ""),
                  **provenance())
    (RESULTS / f"{run_name('late_fusion', seed)}.json").write_text(json.dumps(result, indent=1) + "\n")
    say(f"late fusion: test accuracy {result['test']['both']['accuracy']:.3f} (weights {w}, temperatures {temps})")


def defaults(limit: int | None = None) -> None:
    """The shipped defaults on the test pairs: ``face.fervideo`` (its crop network, int8 ONNX as the analyzer runs
    it; every frame of the sequence, pooled by the bundle's rule) and ``voice.multi6`` (the whole clip as one
    window), fused by the default fusion (``fusion.reliability``) through :mod:`avemo.inference.predictors`."""
    from avemo.audio.windows import Window
    from avemo.datasets.paired import read_manifest
    from avemo.inference.predictors import FacePredictor, Fusion, VoicePredictor
    from avemo.media import read_audio

    data = PairedData()
    pairs = read_manifest(MANIFEST)
    face, voice, fusion = FacePredictor(int8=True), VoicePredictor(), Fusion()
    idx = data.idx("test")[:limit]
    probs: dict[str, list[np.ndarray]] = {"face": [], "voice": [], "both": []}
    voice_cache: dict[str, np.ndarray] = {}
    t0 = time.time()
    for k, i in enumerate(idx.tolist()):
        pf = face.pool(face.predict(data.video[i]))[None]
        clip = pairs[i].clip
        if clip not in voice_cache:
            wave = read_audio(data_root() / clip, sample_rate=voice.sample_rate)
            voice_cache[clip] = voice.predict_windows(wave, [Window(0.0, len(wave) / voice.sample_rate)])
        pv = voice_cache[clip]
        probs["face"].append(pf)
        probs["voice"].append(pv)
        probs["both"].append(fusion.fuse({"face": pf, "voice": pv}, face_labels=face.labels))
        if k % 100 == 0:
            say(f"defaults {k}/{len(idx)} ({time.time() - t0:.0f} s)")
    y = data.y[idx]
    result: dict[str, Any] = {
        "system": "defaults", "bundles": {"face": face.name, "voice": voice.name, "fusion": fusion.name},
        "test": {k: scores(_basic7(np.concatenate(v)), y) for k, v in probs.items()},
        "seconds": time.time() - t0, "n_test": int(len(idx)),
        "note": "voice.multi6 was trained on all 4,369 clips of the six speech corpora, so every test speaker's "
                "voice was seen in its training; face.fervideo never saw FER-2013 PrivateTest",
    }
    rows = []
    for c in clip_inputs():
        pf = face.pool(face.predict(c["frames"]))[None]
        audio = next(a for v, a, _ in CLIPS if v == c["video"])
        wave = read_audio(data_root() / audio, sample_rate=voice.sample_rate)
        pv = voice.predict_windows(wave, [Window(0.0, len(wave) / voice.sample_rate)])
        q = _basic7(fusion.fuse({"face": pf, "voice": pv}, face_labels=face.labels))[0]
        rows.append({"clip": c["video"], "label": c["label"], "predicted": LABELS[int(q.argmax())],
                     "probability": float(q.max())})
    result["clips"] = rows
    result.update(command="python benchmarks/paired_systems.py defaults", **provenance())
    if limit is None:
        (RESULTS / "defaults.json").write_text(json.dumps(result, indent=1) + "\n")
    say(f"defaults: test accuracy {result['test']['both']['accuracy']:.3f} in {result['seconds']:.0f} s")


# -- the BENCHMARKS.md section ----------------------------------------------------------------------------------

BEGIN, END = "<!-- paired-systems:begin -->", "<!-- paired-systems:end -->"
#: The rows of the table, in order: (result name, how it is shown, modality rows it has).
ROWS: tuple[tuple[str, str], ...] = (
    ("mocanu2023_cma", "`mocanu2023_cma` (triplet loss on)"),
    ("mocanu2023_cma_no_triplet", "`mocanu2023_cma` (triplet loss off)"),
    ("akturk2024_onn", "`akturk2024_onn` (two-branch)"),
    ("akturk2024_onn_face", "`akturk2024_onn_face` (single branch, key frame)"),
    ("akturk2024_onn_voice", "`akturk2024_onn_voice` (single branch, log-mel)"),
    ("zhang2016_cnnrnn", "`zhang2016_cnnrnn`"),
    ("dixit2024_cnn", "decision fusion: `dixit2024_cnn`"),
    ("dixit2024_cnn_early", "early fusion: `dixit2024_cnn_early`"),
    ("late_fusion", "late fusion: `LateFusion` over `dixit2024_cnn_video` + `dixit2024_cnn_audio`"),
    ("dixit2024_cnn_video", "`dixit2024_cnn_video` (late-fusion member)"),
    ("dixit2024_cnn_audio", "`dixit2024_cnn_audio` (late-fusion member)"),
    ("defaults", "shipped defaults: `face.fervideo` + `voice.multi6`, `fusion.reliability`"),
)


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "–"
    return f"{100 * r['accuracy']:.1f} / {100 * r['macro_f1']:.1f} / {100 * r['uar']:.1f}"


def _budget(name: str, r: dict[str, Any]) -> str:
    if name == "defaults":
        return f"none (shipped; scoring {r['seconds'] / 60:.0f} min)"
    if name == "late_fusion":
        return f"{r['budget_min']:g} (two members; epochs {r['epochs_run']})"
    return f"{r['budget_min']:g} ({r['epochs_run']} epochs, best {r['best_epoch'] + 1})"


#: The longer budget (minutes) given to the papers' ablation pairs and the CNN-RNN, on a quiet machine.
LONG_MIN = 30.0
LONG_SYSTEMS = ("mocanu2023_cma", "mocanu2023_cma_no_triplet", "akturk2024_onn", "akturk2024_onn_face",
                "akturk2024_onn_voice", "zhang2016_cnnrnn")


def _long_table() -> list[str]:
    """The systems trained again for :data:`LONG_MIN` minutes, beside their :data:`BUDGET_MIN`-minute row."""
    runs = {n: RESULTS / f"{run_name(n, 0, LONG_MIN)}.json" for n in LONG_SYSTEMS}
    runs = {n: json.loads(f.read_text()) for n, f in runs.items() if f.is_file()}
    if not runs:
        return []
    shown = dict(ROWS)
    lines = [
        "",
        f"**A longer budget.** The papers' ablation pairs and the CNN-RNN trained again for {LONG_MIN:g} minutes "
        "each (same set, seed 0, everything else as above; two runs at a time, one thread each, on a machine with "
        "no other job, so an epoch took about half the time it took in the shared runs above; the ablation pairs "
        "ran side by side). Accuracy / macro-F1 / UAR in % on the test pairs:",
        "",
        f"| system | both | face only | voice only | {BUDGET_MIN:g} min, both (from the table above) | "
        "epochs (best) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in LONG_SYSTEMS:
        if name not in runs:
            lines.append(f"| {shown[name]} | not run | | | | |")
            continue
        r, t = runs[name], runs[name]["test"]
        short = RESULTS / f"{name}.json"
        t8 = json.loads(short.read_text())["test"] if short.is_file() else {}
        lines.append(f"| {shown[name]} | {_cell(t.get('both'))} | {_cell(t.get('face'))} | {_cell(t.get('voice'))} | "
                     f"{_cell(t8.get('both') or t8.get('face') or t8.get('voice'))} | "
                     f"{r['epochs_run']} ({r['best_epoch'] + 1}) |")
    return lines


def _seed_means() -> str:
    """The papers' ablations as accuracy means over the training seeds run (empty when a run is missing)."""
    def mean(name: str) -> float | None:
        found = [json.loads(f.read_text())["test"] for f in (RESULTS / f"{run_name(name, k)}.json" for k in (0, 1))
                 if f.is_file()]
        accs = [100 * (t.get("both") or t.get("face") or t.get("voice"))["accuracy"] for t in found]
        return sum(accs) / len(accs) if len(accs) == 2 else None

    m = {n: mean(n) for n in ("mocanu2023_cma", "mocanu2023_cma_no_triplet", "akturk2024_onn", "akturk2024_onn_face",
                              "akturk2024_onn_voice")}
    if any(v is None for v in m.values()):
        return ""
    return (f" Accuracy, mean of the two training seeds: `mocanu2023_cma` triplet loss on {m['mocanu2023_cma']:.1f}, "
            f"off {m['mocanu2023_cma_no_triplet']:.1f}; `akturk2024_onn` two-branch {m['akturk2024_onn']:.1f}, "
            f"key-frame branch alone {m['akturk2024_onn_face']:.1f}, log-mel branch alone "
            f"{m['akturk2024_onn_voice']:.1f}.")


def render(path: Path = HERE.parent / "BENCHMARKS.md") -> None:
    from avemo.markdown import replace_section

    results = {n: json.loads((RESULTS / f"{n}.json").read_text()) for n, _ in ROWS if (RESULTS / f"{n}.json").is_file()}
    info = json.loads((RESULTS / "set.json").read_text())
    n_spk = {k: len(v) for k, v in info["speakers"].items()}
    test_counts = info["per_class"]["test"]
    majority = max(test_counts.values()) / sum(test_counts.values())
    commits = sorted({r.get("commit", "?") for r in results.values()} | {info["commit"]})
    mach = next(iter(results.values()), info)["machine"]
    lines = [
        BEGIN,
        "## Frame-level systems on a paired audio-visual set (FER-2013 faces + real speech)",
        "",
        "Regenerate: `python benchmarks/paired_systems.py build`, then `train NAME` for each system, `late`, "
        "`defaults`, and `render` (writes this section from `benchmarks/results/paired_systems/*.json`). "
        "The set's manifest (every face and clip of every pair): `benchmarks/results/paired_systems/manifest.csv`.",
        "",
        "**What the set is.** Speech: the six shared speech corpora (RAVDESS speech, SAVEE, EMOVO, CASIA, URDU, "
        "BanglaSER-ext), split **by speaker** within each corpus (seed 0; about 20 % of each corpus's speakers test, "
        f"15 % selection, the rest training: {n_spk['train']} / {n_spk['val']} / {n_spk['test']} speakers; no speaker "
        "on two sides). Faces: FER-2013 Training for training pairs, PublicTest for selection, PrivateTest for test, "
        "drawn per class without replacement (a class that runs out is drawn again: "
        f"{', '.join(f'{k} {v}' for k, v in info['faces_reused'].items())} pairs reuse a face). Each face becomes a "
        f"sequence of {info['jitter']['frames']} frames 48x48 grey with a smooth track of shifts (at most "
        f"{info['jitter']['shift']:g} px), scale (at most {100 * info['jitter']['scale']:g} %) and brightness (at most "
        f"{100 * info['jitter']['brightness']:g} %), as a tracked face shows; no expression is invented. Each speech "
        "clip is paired with faces of its own class (two per training clip, one otherwise): "
        f"{info['pairs']['train']} training pairs ({info['clips']['train']} clips), {info['pairs']['val']} selection, "
        f"{info['pairs']['test']} test; seven classes (neutral, happy, sad, angry, fearful, disgust, surprised; "
        f"*calm* has no face counterpart and is left out). Majority class of the test pairs: {100 * majority:.1f} %; "
        "test pairs per corpus: " + ", ".join(f"{k} {v}" for k, v in sorted(info["per_corpus"]["test"].items())) + ".",
        "",
        "**What it is not.** The face and the voice of a pair come from different people and are **independent "
        "given the label**. The set measures how well a system combines two real, noisy cues of one emotion; it "
        "says nothing about audio-visual synchrony, lip movement or one speaker's face-voice coupling (no such "
        "corpus can be brought here), and temporal layers see tracking jitter, not expression dynamics.",
        "",
        f"**Protocol.** Each system trained from scratch on the training pairs for a fixed wall-clock budget of "
        f"{BUDGET_MIN:g} minutes on one CPU thread (the schedule anneals within it; at most {MAX_EPOCHS} epochs), "
        "AdamW, warm-up + cosine, batch 32, label smoothing 0.1, one SpecAugment mask, a random horizontal flip of "
        "the face; every epoch validated on the selection pairs and the best epoch (accuracy) kept; nothing chosen "
        f"on test. Audio: a random {WINDOW / 100:g} s log-mel window (64 bands, 10 ms hop, silence 30 dB under the "
        f"peak trimmed, at most 4 s kept per clip); test: mean softmax over {WINDOW / 100:g} s windows every "
        f"{HOP / 100:g} s with the whole face input. Scores are accuracy / macro-F1 / UAR in % on the "
        f"{info['pairs']['test']} test pairs (one seed). *face only* / *voice only* for a two-input network: the "
        "same trained network asked with the other input absent (its learned placeholder or renormalised decision "
        "weights; not retrained, so low numbers there say the network relies on the other side); for a one-input "
        "network it is that network. Aktürk et al.'s key frame: `avemo.faces.select_key_frames` on the sequence.",
        "",
        "**What was cut** (2 shared CPU cores, a few hours): widths are the recipes' `ablation:` widths (e.g. "
        "`mocanu2023_cma` width 8, one block per stage, dim 64; the papers' are 8-32x wider), 8 frames at 48 px instead"
        " of 15-16, 2 s windows instead of 3 s, minutes instead of 60-80 epochs, two training seeds (one at the longer "
        "budget), no pre-training (the papers start from ImageNet / Kinetics / AlexNet weights). The numbers compare "
        "systems under one equal budget on this set; they do not reproduce the papers. The machine was shared with "
        "other jobs (two of these runs at a time, plus tests), so a budget bought fewer epochs than an idle machine "
        "would. An equal wall-clock budget favours cheap networks: a single key-frame branch runs several times more "
        "epochs than a network over 8 frames and a spectrogram (the epochs column).",
        "",
        "**Shipped defaults**: the analyzer's bundles through `avemo.inference.predictors` on the same test pairs: "
        "`face.fervideo`'s crop network (int8 ONNX, flip views) on every frame of the sequence, pooled by its rule "
        "(its blendshape member needs MediaPipe landmarks, not run on 48 px faces), `voice.multi6` on the whole "
        "clip as one window, fused by the default fusion `fusion.reliability`; argmax over the seven classes. "
        "**Caveat: `voice.multi6` was trained on all 4,369 clips of these six corpora, so its voice and fused rows "
        "are on speakers it has seen (not a held-out score)**; `face.fervideo` never saw PrivateTest.",
        "",
        "| system | both | face only | voice only | both, training seed 1 | parameters | budget, min (epochs) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, shown in ROWS:
        r = results.get(name)
        if r is None:
            lines.append(f"| {shown} | not run: budget | | | | | |")
            continue
        t = r["test"]
        params = f"{r['n_params']:,}" if "n_params" in r else "–"
        again = RESULTS / f"{run_name(name, 1)}.json"
        if name == "defaults":
            second = "– (not trained here)"
        elif again.is_file():
            t1 = json.loads(again.read_text())["test"]
            second = _cell(t1.get("both") or t1.get("face") or t1.get("voice"))
        else:
            second = "not run: budget"
        lines.append(f"| {shown} | {_cell(t.get('both'))} | {_cell(t.get('face'))} | {_cell(t.get('voice'))} | "
                     f"{second} | {params} | {_budget(name, r)} |")
    lines += [
        "",
        "The papers' own ablations are the row pairs above: `mocanu2023_cma` with its emotion-constrained triplet "
        "loss on and off (same network, same budget), and `akturk2024_onn` two-branch against its single-branch "
        "networks. *both, training seed 1*: the same system trained again with another training seed (initial "
        "weights, batch order, crops; same set, same budget), scored on its own input(s), to show how much of a "
        "difference between rows one seed can move." + _seed_means(),
        *_long_table(),
        "",
        "**The shared talking-face clips through each trained system** — *a sanity check, not a score* (four "
        "clips; the face crops are `avemo.faces.scan_video` at 5 fps, 8 evenly spaced; CREMA-D clips carry their "
        "own audio, the RAVDESS clip takes its WAV twin). Predicted class (probability):",
        "",
    ]
    clips = [c for c, _, _ in CLIPS]
    labels = [lab for _, _, lab in CLIPS]
    lines.append("| system | " + " | ".join(f"`{Path(c).name}` ({lab})" for c, lab in zip(clips, labels, strict=True))
                 + " |")
    lines.append("| --- |" + " --- |" * len(clips))
    for name, shown in ROWS:
        r = results.get(name)
        if r is None or "clips" not in r:
            continue
        cells = {row["clip"]: f"{row['predicted']} ({row['probability']:.2f})" for row in r["clips"]}
        lines.append(f"| {shown} | " + " | ".join(cells.get(c, "–") for c in clips) + " |")
    lines += [
        "",
        f"Commits: {', '.join(f'`{c}`' for c in commits)} (each result's JSON records its own); machine: "
        f"{mach['platform']}, {mach['cpu_count']} CPUs shared with other jobs, torch {mach['torch']} (1 thread).",
        END,
    ]
    replace_section(path, BEGIN, END, "\n".join(lines))
    say(f"-> {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    t = sub.add_parser("train")
    t.add_argument("name", choices=sorted(SYSTEMS))
    t.add_argument("--budget-min", type=float, default=BUDGET_MIN)
    t.add_argument("--seed", type=int, default=0, help="training seed (the set is always built with seed 0)")
    lt = sub.add_parser("late")
    lt.add_argument("--seed", type=int, default=0, help="the members' training seed")
    sub.add_parser("render")
    d = sub.add_parser("defaults")
    d.add_argument("--limit", type=int, default=None,
                   help="only the first N test pairs (a timing check; writes nothing)")
    args = ap.parse_args()
    if args.cmd == "render":
        render()
    elif args.cmd == "late":
        late(args.seed)
    elif args.cmd == "defaults":
        defaults(args.limit)
    elif args.cmd == "build":
        build()
    elif args.cmd == "train":
        train(args.name, args.budget_min, args.seed)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
