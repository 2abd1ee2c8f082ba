"""The frame-level reviewed systems, the fusion systems and the shipped defaults on the paired audio-visual set.

The set (:mod:`avemo.datasets.paired`): FER-2013 faces made into short face sequences, each paired with a real
speech clip of the same class from the six shared speech corpora, split by speaker. Every system is trained on
the training pairs for a fixed wall-clock budget, its best epoch chosen on the selection pairs (val accuracy),
and scored on the test pairs: both modalities, face only, voice only.

    python benchmarks/paired_systems.py build             # manifest (committed) + arrays (cache)
    python benchmarks/paired_systems.py train NAME        # one system -> results/paired_systems/NAME.json
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


def train(name: str, budget_min: float = BUDGET_MIN) -> None:
    import torch

    from avemo.models.registry import model_info
    from avemo.training.recipe import Optim, Train
    from avemo.training.trainer import Trainer

    torch.set_num_threads(1)
    cfg = SYSTEMS[name]
    data = PairedData()
    task = make_task(name, data)
    out = work_dir() / "runs" / name
    t0 = time.time()
    model = Trainer(task, optim=Optim(lr=cfg["lr"], weight_decay=1e-4, batch_size=32, label_smoothing=0.1),
                    train=Train(epochs=MAX_EPOCHS, warmup_epochs=1.0, time_budget_min=budget_min, val_every=1,
                                select="best", threads=1),
                    out_dir=out, seed=(SEED,), log=say).fit()
    seconds = time.time() - t0
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    mods = model_info(cfg["model"]).modalities
    variants = {"both": mods} if len(mods) == 2 else {}
    variants.update({"face": ("video",), "voice": ("audio",)})
    result: dict[str, Any] = {"system": name, "model": cfg["model"], "kwargs": cfg["kwargs"], "about": cfg["about"],
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
    result.update(command=f"python benchmarks/paired_systems.py train {name}", **provenance())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    say(f"-> {RESULTS / (name + '.json')}")


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
                     "probability": float(p.max()), "face_frames_found": c["found"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    t = sub.add_parser("train")
    t.add_argument("name", choices=sorted(SYSTEMS))
    t.add_argument("--budget-min", type=float, default=BUDGET_MIN)
    args = ap.parse_args()
    if args.cmd == "build":
        build()
    elif args.cmd == "train":
        train(args.name, args.budget_min)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
