"""The system runner: ``kind: system`` recipes train a reviewed system (:mod:`avemo.models.systems`)
through its forward convention and its own loss, on the harness's folds, fold by fold, resumably.

What the system sees (the recipe's ``inputs`` section; defaults from the system's modalities):

* ``audio: logmel`` — log-mels of the sample's speech (:func:`avemo.training.data.voice_settings`,
  cached in the same feature cache and namespace as the voice runner). A RAVDESS full-AV file
  without an audio track takes its audio from the audio-only file of the same take beside it.
* ``video: faces`` — aligned face crops at ``features.faces.fps`` (:func:`avemo.faces.scan_video`,
  cached); a frame where no face is found is a blank crop (counted in ``fold.json``), never a
  dropped sample. Audio is then not trimmed, so that audio and face windows stay aligned in time.
* ``video: keyframe`` — ``model.kwargs.video_frames`` key frames of the clip's face crops
  (:func:`avemo.models.systems.akturk2024_onn.key_frame_input`).
* ``video: au35`` — the clip's 35 OpenFace action-unit means (RAVDESS, ``ravdess-au``), standardised
  on the fold's training actors and fed as a one-frame "video" ``(B, 1, 1, 1, 35)``; every
  frame-level visual encoder of the system is replaced by a small MLP (:class:`AUEncoder`).
  This is an adapter, not the published visual branch.
* ``none`` for either side leaves that modality out (the system answers from the other).

A recipe's ``audio_front_end`` (a dotted function: wave, sample rate -> log-mel, e.g. noise reduction
first) replaces the plain log-mel. Text is not an input here: no transcribed audio-visual corpus is
available, and the text module of ``almulla2024_fvt`` is fitted apart (``fit_text_carer``); without
text its fusion weights are renormalised over face and voice.

Training draws one random ``features.window_s`` window per clip and epoch (with the matching face
frames), optional SpecAugment, AdamW with warm-up + cosine decay, ``system.loss(out, y)``.
Prediction averages the softmax over windows every ``features.eval_hop_s``. A fold writes
``fold_k/checkpoint.pt`` every epoch, ``fold_k/log.jsonl``, then ``fold_k/predictions.npz`` and
``fold_k/fold.json``; ``row.json`` holds the parameter count and the inputs, for reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.training import loop
from avemo.training.data import Fold, au_features, cached, labels_of, trim_silence, voice_settings
from avemo.training.recipe import Recipe, RecipeError
from avemo.training.voice import eval_windows, lr_at, random_window, spec_augment

VIDEO_INPUTS = ("faces", "keyframe", "au35", "none")
AUDIO_INPUTS = ("logmel", "none")
#: Kwargs that wrap another registered system (their own kwargs go to ``base_kwargs``).
WRAPPERS = ("ma2020_shgr", "goncalves2024_robust")


class AUEncoder(nn.Module):
    """Stand-in for a frame-level visual encoder when the "video" is a clip's action-unit vector:
    ``(B, T, C, H, W)`` (flattened per frame to ``in_dim``) -> per-frame ``(B, T, out_dim)``; :meth:`pooled`
    averages over frames, like :class:`avemo.models.blocks.FrameCNN`."""

    def __init__(self, *, in_dim: int, out_dim: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(hidden, out_dim), nn.ReLU(inplace=True))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if video.dim() == 4:
            video = video.unsqueeze(1)
        b, t = video.shape[:2]
        flat = video.reshape(b, t, -1)
        if flat.shape[-1] != self.in_dim:
            raise RecipeError(f"AU adapter expects {self.in_dim} features per frame, got {flat.shape[-1]}")
        return self.mlp(flat)

    def pooled(self, video: torch.Tensor) -> torch.Tensor:
        return self(video).mean(1)


def swap_visual_encoders(model: nn.Module, in_dim: int, hidden: int = 64) -> list[str]:
    """Replace every frame-level visual encoder of ``model`` (each :class:`~avemo.models.blocks.FrameCNN`,
    and a per-frame ``face_net``) by an :class:`AUEncoder` of the same output size; returns their names."""
    from avemo.models.blocks import FrameCNN, TimeDistributed

    targets = [(name, mod) for name, mod in model.named_modules()
               if isinstance(mod, FrameCNN) or (name.split(".")[-1] == "face_net" and isinstance(mod, TimeDistributed))]
    for name, mod in targets:
        out_dim = mod.out_dim if isinstance(mod, FrameCNN) else mod.module.out_dim
        parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        setattr(parent, name.rsplit(".", 1)[-1], AUEncoder(in_dim=in_dim, out_dim=out_dim, hidden=hidden))
    return [name for name, _ in targets]


# -- inputs ------------------------------------------------------------------------------------------

def input_modes(recipe: Recipe, modalities: Sequence[str]) -> dict[str, str]:
    """The recipe's ``inputs`` (checked), defaulting to log-mels and face crops for the system's modalities."""
    given = recipe.section("inputs")
    modes = {"audio": str(given.get("audio", "logmel" if "audio" in modalities else "none")),
             "video": str(given.get("video", "faces" if "video" in modalities else "none"))}
    if modes["audio"] not in AUDIO_INPUTS:
        raise RecipeError(f"{recipe.path}: inputs.audio must be one of {AUDIO_INPUTS}, got {modes['audio']!r}")
    if modes["video"] not in VIDEO_INPUTS:
        raise RecipeError(f"{recipe.path}: inputs.video must be one of {VIDEO_INPUTS}, got {modes['video']!r}")
    if modes == {"audio": "none", "video": "none"}:
        raise RecipeError(f"{recipe.path}: inputs leave out both audio and video")
    for side in ("audio", "video"):
        if modes[side] != "none" and side not in modalities:
            raise RecipeError(f"{recipe.path}: the system has no {side} branch (modalities {tuple(modalities)})")
    return modes


def audio_path(sample: Any) -> Path:
    """Where a sample's audio is: the file itself, or for a RAVDESS full-AV file without an audio track
    the audio-only file of the same take (``03-...``) beside it."""
    from avemo.media.probe import probe

    path = Path(sample.path)
    if path.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg", ".m4a") or probe(path).has_audio:
        return path
    if sample.corpus == "ravdess" and path.stem[:2] in ("01", "02"):
        for ext in (".wav", ".flac"):
            other = path.with_name("03" + path.stem[2:] + ext)
            if other.is_file():
                return other
    raise RecipeError(f"{path}: has no audio track and no audio-only file of the same take beside it")


def front_end(dotted: str) -> Any:
    """The function a recipe's ``audio_front_end`` names (``package.module.function``: wave, rate -> log-mel)."""
    import importlib

    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise RecipeError(f"audio_front_end {dotted!r} is not an importable function") from None


def logmels(samples: Sequence, features: dict[str, Any], *, trim: bool = True,
            audio_front_end: str | None = None) -> list[np.ndarray]:
    """Log-mels ``(n_mels, frames)`` of every sample's speech, cached (same namespace as the voice runner);
    with ``audio_front_end`` (e.g. a system's noise reduction then log-mel), that function's output instead."""
    from avemo.audio import MelConfig, log_mel
    from avemo.media import read_audio

    settings = voice_settings(features)
    if not trim:
        settings["trim_db"] = 0.0
    cfg = MelConfig.from_dict(settings["mel"])
    namespace, fn = "voice-logmel", None
    if audio_front_end:
        namespace, fn = "system-front-end", front_end(audio_front_end)
        settings["front_end"] = audio_front_end

    def one(path: Path) -> np.ndarray:
        def compute() -> dict[str, np.ndarray]:
            wave = trim_silence(read_audio(path, sample_rate=cfg.sample_rate), settings["trim_db"])
            mel = fn(wave, cfg.sample_rate) if fn is not None else log_mel(wave, cfg)
            return {"logmel": np.asarray(mel, dtype=np.float32)}

        return cached(path, namespace, settings, compute)["logmel"]

    return [one(audio_path(s)) for s in samples]


def face_tracks(samples: Sequence, faces: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """Per sample: ``crops`` ``(T, size, size)`` uint8 grey (blank where no face was found) and ``found``
    ``(T,)``, sampled at ``faces.fps``; cached."""
    from avemo.faces import scan_video

    settings = {"fps": float(faces.get("fps", 5.0)), "size": int(faces.get("size", 48)), "grey": True}

    def one(path: Path) -> dict[str, np.ndarray]:
        def compute() -> dict[str, np.ndarray]:
            frames = scan_video(path, fps=settings["fps"], size=settings["size"], grey=True)
            blank = np.zeros((settings["size"], settings["size"]), np.uint8)
            crops = [f.main_crop if f.main_crop is not None else blank for f in frames] or [blank]
            crops = [c if c.ndim == 2 else c[..., 0] for c in crops]
            found = [f.main_crop is not None for f in frames] or [False]
            return {"crops": np.stack(crops).astype(np.uint8), "found": np.asarray(found, bool)}

        return cached(path, "system-faces", settings, compute)

    return [one(Path(s.path)) for s in samples]


@dataclass
class SystemData:
    """Everything a fold trains on: labels, log-mels, and the visual side in the form ``modes`` says."""

    y: np.ndarray
    modes: dict[str, str]
    length: int                       # audio window (frames)
    hop: int                          # evaluation hop (frames)
    video_frames: int = 1
    fps: float = 5.0
    mels: list[np.ndarray] | None = None
    faces: list[dict[str, np.ndarray]] | None = None
    keyframes: list[np.ndarray] | None = None
    au: np.ndarray | None = None
    au_scaled: np.ndarray | None = field(default=None, repr=False)

    def standardise_au(self, train_idx: np.ndarray) -> None:
        """AU features scaled by the mean and std of the fold's training clips only."""
        if self.au is not None:
            mu, sd = self.au[train_idx].mean(0), self.au[train_idx].std(0) + 1e-6
            self.au_scaled = ((self.au - mu) / sd).astype(np.float32)

    def _video(self, i: int, start_s: float) -> np.ndarray | None:
        mode = self.modes["video"]
        if mode == "au35":
            return self.au_scaled[i].reshape(1, 1, 1, -1)
        if mode == "keyframe":
            return self.keyframes[i]
        if mode == "faces":
            crops = self.faces[i]["crops"]
            first = min(int(round(start_s * self.fps)), len(crops) - 1)
            idx = np.minimum(np.arange(first, first + self.video_frames), len(crops) - 1)
            return (crops[idx].astype(np.float32) / 255.0)[:, None]
        return None

    def windows(self, i: int, rng: np.random.Generator | None) -> list[dict[str, np.ndarray]]:
        """One random window (training, ``rng`` given) or every evaluation window of clip ``i``."""
        from avemo.models.systems.base import AUDIO_FPS

        if self.mels is None:
            return [{"video": self._video(i, 0.0)}]
        mel = self.mels[i]
        n = mel.shape[1]
        if rng is not None:
            start = int(rng.integers(0, n - self.length + 1)) if n >= self.length else 0
            audio = random_window(mel, self.length, rng) if n < self.length else mel[:, start:start + self.length]
            starts, audios = [start], [audio]
        else:
            audios = list(eval_windows(mel, self.length, self.hop))
            starts = list(range(0, max(1, n - self.length + 1), self.hop))[:len(audios)]
            starts += [max(0, n - self.length)] * (len(audios) - len(starts))
        out = []
        for s, a in zip(starts, audios, strict=True):
            item = {"audio": a} if self.modes["audio"] != "none" else {}
            v = self._video(i, s / AUDIO_FPS)
            if v is not None:
                item["video"] = v
            out.append(item)
        return out


def usable(samples: Sequence, modes: dict[str, str]) -> np.ndarray:
    """Which samples the system trains and is tested on: one file per recorded take, with the media the
    inputs need (a full-AV file where video is needed; else the audio file). RAVDESS keeps the same take
    as audio-only, video-only and full-AV files; they share a fold, and the take is counted once."""
    needs_video = modes["video"] in ("faces", "keyframe")
    rank = {"av": 0, "video": 1, "audio": 2} if needs_video else {"audio": 0, "av": 1, "video": 2}
    best: dict[str, int] = {}
    for i, s in enumerate(samples):
        if needs_video and s.modality not in ("av", "video"):
            continue
        if not needs_video and s.modality == "video" and modes["audio"] != "none":
            continue
        j = best.get(s.take)
        if j is None or rank.get(s.modality, 9) < rank.get(samples[j].modality, 9):
            best[s.take] = i
    keep = np.zeros(len(samples), bool)
    keep[list(best.values())] = True
    if not keep.any():
        kinds = sorted({s.modality for s in samples})
        raise RecipeError(f"inputs {modes} need {'video' if needs_video else 'audio'} files, but the corpus gives "
                          f"only {kinds} files (e.g. {samples[0].path}); point data.root at a release with them")
    return keep


def collate(items: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.stack([it[k] for it in items]).astype(np.float32)) for k in items[0]}


def load_data(recipe: Recipe, samples: Sequence, modes: dict[str, str], keep: np.ndarray | None = None
              ) -> SystemData:
    """Compute (or read from the cache) every input the recipe's system needs, for the ``keep`` samples
    (all by default; the others get ``None``)."""
    from avemo.models.systems.base import AUDIO_FPS

    feats = recipe.section("features")
    kwargs = recipe.section("model").get("kwargs") or {}
    spec = kwargs.get("base_kwargs", kwargs)
    length = int(round(float(feats.get("window_s", 3.0)) * AUDIO_FPS))
    hop = int(round(float(feats.get("eval_hop_s", 1.0)) * AUDIO_FPS))
    faces_cfg = feats.get("faces") or {}
    data = SystemData(y=labels_of(samples), modes=modes, length=length, hop=hop,
                      video_frames=int(spec.get("video_frames", 15)), fps=float(faces_cfg.get("fps", 5.0)))
    keep = np.ones(len(samples), bool) if keep is None else keep
    kept = [s for s, k in zip(samples, keep, strict=True) if k]

    def spread(values: Sequence) -> list:
        it = iter(values)
        return [next(it) if k else None for k in keep]

    if modes["audio"] == "logmel":
        data.mels = spread(logmels(kept, feats, trim=modes["video"] != "faces",
                                   audio_front_end=recipe.get("audio_front_end")))
    if modes["video"] == "au35":
        data.au = np.zeros((len(samples), 35), np.float32)
        data.au[keep] = au_features(kept, feats.get("au_csv"))
    elif modes["video"] in ("faces", "keyframe"):
        data.faces = spread(face_tracks(kept, faces_cfg))
    if modes["video"] == "keyframe":
        from avemo.models.systems.akturk2024_onn import key_frame_input

        size = int(faces_cfg.get("size", 48))
        data.keyframes = []
        for track in data.faces:
            if track is None:
                data.keyframes.append(None)
                continue
            found = [c for c, ok in zip(track["crops"], track["found"], strict=True) if ok] or list(track["crops"])
            data.keyframes.append(key_frame_input(found, k=data.video_frames, size=size).numpy())
    return data


# -- model ---------------------------------------------------------------------------------------------

def model_kwargs(recipe: Recipe, modes: dict[str, str], data: SystemData) -> dict[str, Any]:
    """The system's constructor kwargs: the recipe's, with the input spec and label smoothing filled in."""
    spec = recipe.section("model")
    kwargs = dict(spec.get("kwargs") or {})
    inner = kwargs.setdefault("base_kwargs", {}) if spec.get("architecture") in WRAPPERS else kwargs
    inner["audio_frames"] = data.length
    inner.setdefault("n_mels", voice_settings(recipe.section("features"))["mel"]["n_mels"])
    if modes["video"] == "au35":
        inner.update(video_frames=1, channels=1)
    elif modes["video"] == "faces":
        inner["face_size"] = int((recipe.section("features").get("faces") or {}).get("size", 48))
    smoothing = recipe.section("optim").get("label_smoothing")
    if smoothing is not None:
        inner.setdefault("label_smoothing", float(smoothing))
    return kwargs


def create_system(recipe: Recipe, name: str | None, kwargs: dict[str, Any]) -> nn.Module:
    """A registered system by name; a missing name or kwargs that do not fit become a :class:`RecipeError`."""
    import avemo.models.systems  # noqa: F401  (registers the systems)
    from avemo.errors import ModelError
    from avemo.models.registry import create_model

    if not name:
        raise RecipeError(f"{recipe.path}: model.architecture (a registered system) is missing")
    try:
        return create_model(name, **kwargs)
    except (TypeError, ValueError, ModelError) as err:
        raise RecipeError(f"{recipe.path}: model {name!r} cannot be built from model.kwargs: {err}") from None


def build_system(recipe: Recipe, modes: dict[str, str], data: SystemData) -> tuple[nn.Module, list[str]]:
    """The registered system (``model.architecture``), with the AU adapter where ``inputs.video`` is au35."""
    name = recipe.section("model").get("architecture")
    model = create_system(recipe, name, model_kwargs(recipe, modes, data))
    swapped: list[str] = []
    if modes["video"] == "au35":
        swapped = swap_visual_encoders(model, in_dim=data.au.shape[1],
                                       hidden=int(recipe.section("inputs").get("au_hidden", 64)))
        if not swapped:
            raise RecipeError(f"{recipe.path}: {name} has no frame-level visual encoder the AU adapter can replace")
    return model, swapped


def n_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def used_params(model: nn.Module, modes: dict[str, str], data: SystemData) -> int:
    """Parameters that the recipe's inputs reach: those given a gradient by the system's loss on a
    two-example batch (a branch whose modality is left out does not count)."""
    was_training = model.training
    model.eval()  # no modality dropout, batch norm on running statistics
    model.zero_grad(set_to_none=True)
    x: dict[str, torch.Tensor] = {}
    if modes["audio"] != "none":
        n_mels = int(model.spec.n_mels)
        x["audio"] = torch.randn(2, n_mels, data.length)
    if modes["video"] == "au35":
        x["video"] = torch.randn(2, 1, 1, 1, data.au.shape[1])
    elif modes["video"] != "none":
        s = model.spec
        frames = data.video_frames
        x["video"] = torch.rand(2, frames, s.channels, s.face_size, s.face_size)
    model.loss(model(**x), torch.tensor([0, 1])).backward()
    count = int(sum(p.numel() for p in model.parameters() if p.grad is not None))
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return count


def modalities_of(recipe: Recipe) -> tuple[str, ...]:
    """The modalities of the recipe's system, read from a default-built instance (cheap for these sizes)."""
    spec = recipe.section("model")
    model = create_system(recipe, spec.get("architecture"), spec.get("kwargs") or {})
    return tuple(getattr(model, "modalities", ("audio", "video")))


# -- training and prediction ----------------------------------------------------------------------------

def train_system(recipe: Recipe, data: SystemData, modes: dict[str, str], train_idx: np.ndarray, out_dir: Path, *,
                 fold: int, val_idx: np.ndarray | None = None, bar: Any = None) -> nn.Module:
    """Train (or resume) the system on ``train_idx`` for ``epochs``; returns it in eval mode."""
    opt_cfg = recipe.section("optim")
    sa = recipe.section("augment").get("specaugment") or {}
    epochs = int(recipe.get("epochs", 40))
    batch = int(opt_cfg.get("batch_size", 32))
    base_lr = float(opt_cfg.get("lr", 1e-3))
    torch.manual_seed(recipe.seed * 1000 + fold)
    model, _ = build_system(recipe, modes, data)
    optim = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=float(opt_cfg.get("weight_decay", 1e-4)))
    ckpt_path, log_path = out_dir / "checkpoint.pt", out_dir / "log.jsonl"
    state = loop.load_checkpoint(ckpt_path)
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        start = int(state["epoch"]) + 1
    steps = max(1, math.ceil(len(train_idx) / batch))
    total, warmup = epochs * steps, int(opt_cfg.get("warmup_epochs", 1)) * steps
    task = bar.add_task(f"fold {fold}: epochs", total=epochs, completed=start) if bar is not None else None
    for epoch in range(start, epochs):
        timer = loop.Timer()
        model.train()
        g = loop.generator(recipe.seed, fold, epoch)
        rng = np.random.default_rng([recipe.seed, fold, epoch])
        order = train_idx[torch.randperm(len(train_idx), generator=g).numpy()]
        losses, correct, seen = [], 0, 0
        for b in range(steps):
            idx = order[b * batch:(b + 1) * batch]
            if idx.size < 2:  # batch norm and metric losses need two examples
                continue
            x = collate([data.windows(int(i), rng)[0] for i in idx])
            if "audio" in x:
                x["audio"] = spec_augment(x["audio"], g, freq=int(sa.get("freq", 0)), time=int(sa.get("time", 0)),
                                          n=int(sa.get("n", 0)))
            target = torch.from_numpy(data.y[idx])
            for group in optim.param_groups:
                group["lr"] = lr_at(epoch * steps + b, total, base_lr, warmup)
            out = model(**x)
            loss = model.loss(out, target)
            optim.zero_grad()
            loss.backward()
            optim.step()
            losses.append(loss.item())
            correct += int((out["logits"].argmax(1) == target).sum())
            seen += idx.size
        record: dict[str, Any] = {"fold": fold, "epoch": epoch, "train_loss": float(np.mean(losses)),
                                  "train_acc": correct / max(1, seen), "lr_end": optim.param_groups[0]["lr"],
                                  "seconds": round(timer.seconds, 2)}
        if val_idx is not None and val_idx.size and epoch == epochs - 1:
            probs = predict(model, data, val_idx)["probs"]
            record["val_acc"] = float((probs.argmax(1) == data.y[val_idx]).mean())
        loop.end_epoch(record, log_path, ckpt_path, model, optim, bar, task)
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, data: SystemData, idx: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Per clip: mean softmax over its evaluation windows, the log of that mean, and the mean embedding."""
    was_training = model.training
    model.eval()
    items, owner = [], []
    for k, i in enumerate(idx.tolist()):
        wins = data.windows(int(i), None)
        items += wins
        owner += [k] * len(wins)
    owner_a = np.asarray(owner)
    probs, embs = [], []
    for s in range(0, len(items), batch):
        out = model(**collate(items[s:s + batch]))
        probs.append(torch.softmax(out["logits"], -1).numpy())
        embs.append(out["embedding"].reshape(len(out["logits"]), -1).numpy())
    probs_a, embs_a = np.concatenate(probs), np.concatenate(embs)
    mean_p = np.stack([probs_a[owner_a == k].mean(0) for k in range(len(idx))])
    model.train(was_training)
    return {"probs": mean_p, "logits": np.log(np.clip(mean_p, 1e-8, 1)),
            "embedding": np.stack([embs_a[owner_a == k].mean(0) for k in range(len(idx))])}


def run_folds(recipe: Recipe, samples: Sequence, folds: Sequence[Fold], run_dir: Path,
              only: Sequence[int] | None = None, show: bool = True) -> list[Path]:
    """Train every fold (resuming where a checkpoint exists) and store its predictions."""
    modes = input_modes(recipe, modalities_of(recipe))
    keep = usable(samples, modes)
    data = load_data(recipe, samples, modes, keep)
    written: list[Path] = []
    with loop.progress(show) as bar:
        for fold, out in loop.folds_to_train(folds, run_dir, only, written):
            timer = loop.Timer()
            train_idx, val_idx, test_idx = (i[keep[i]] for i in (fold.train, fold.val, fold.test))
            data.standardise_au(train_idx)
            model = train_system(recipe, data, modes, train_idx, out, fold=fold.index, val_idx=val_idx, bar=bar)
            log = loop.read_jsonl(out / "log.jsonl")
            pred_path = loop.save_predictions(out / "predictions.npz", data.y, {"val": val_idx, "test": test_idx},
                                              lambda idx, m=model: predict(m, data, idx))
            extra: dict[str, Any] = {"train_seconds": sum(r.get("seconds", 0) for r in log),
                                     "session_seconds": timer.seconds, "n_params": n_params(model),
                                     "epochs": len(log), "inputs": modes, "labels": list(EMOTIONS)}
            if log and "val_acc" in log[-1]:
                extra["val_acc"] = log[-1]["val_acc"]
            if data.faces is not None:
                test_faces = [data.faces[i]["found"] for i in test_idx]
                extra["face_frames"] = {"test_frames": int(sum(f.size for f in test_faces)),
                                        "test_frames_without_face": int(sum((~f).sum() for f in test_faces))}
            used = {"n_train": int(train_idx.size), "n_val": int(val_idx.size), "n_test": int(test_idx.size)}
            loop.write_json(out / "fold.json", {**fold.describe(), **used, **extra})
            written.append(pred_path)
    model, swapped = build_system(recipe, modes, data)
    about = {"description": recipe.get("description", ""), "architecture": recipe.section("model")["architecture"],
             "inputs": modes, "n_params": n_params(model), "n_params_used": used_params(model, modes, data),
             "epochs": int(recipe.get("epochs", 40)),
             "adapter": ({"replaced": swapped, "by": "AUEncoder (MLP over the 35 clip-level AU features)"}
                         if swapped else None)}
    loop.write_json(run_dir / "row.json", about)
    return written
