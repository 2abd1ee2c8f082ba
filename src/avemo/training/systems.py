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
  frame-level visual encoder of the system is replaced by a small MLP (:class:`avemo.models.blocks.au.AUEncoder`).
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

import copy
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avemo.labels import EMOTIONS
from avemo.models.blocks.au import swap_visual_encoders
from avemo.training import distributed, loop
from avemo.training.data import Fold, au_features, cached, labels_of, trim_silence, voice_settings
from avemo.training.recipe import Features, Recipe, RecipeError
from avemo.training.trainer import Trainer, TrainingTask
from avemo.training.voice import eval_windows, random_window, spec_augment

VIDEO_INPUTS = ("faces", "keyframe", "au35", "none")
AUDIO_INPUTS = ("logmel", "none")


# -- inputs ------------------------------------------------------------------------------------------

def input_modes(recipe: Recipe, modalities: Sequence[str]) -> dict[str, str]:
    """The recipe's ``inputs`` (checked), defaulting to log-mels and face crops for the system's modalities."""
    given = recipe.inputs
    modes = {"audio": str(given.audio or ("logmel" if "audio" in modalities else "none")),
             "video": str(given.video or ("faces" if "video" in modalities else "none"))}
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
    from avemo.datasets.ravdess import audio_only_twin
    from avemo.media.probe import probe

    path = Path(sample.path)
    if path.suffix.lower() in (".wav", ".flac", ".mp3", ".ogg", ".m4a") or probe(path).has_audio:
        return path
    twin = audio_only_twin(path) if sample.corpus == "ravdess" else None
    if twin is not None:
        return twin
    raise RecipeError(f"{path}: has no audio track and no audio-only file of the same take beside it")


def front_end(dotted: str) -> Any:
    """The function a recipe's ``audio_front_end`` names (``package.module.function``: wave, rate -> log-mel)."""
    import importlib

    module, _, attr = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise RecipeError(f"audio_front_end {dotted!r} is not an importable function") from None


def logmels(samples: Sequence, features: Features, *, trim: bool = True,
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


def face_tracks(samples: Sequence, faces: Mapping[str, Any]) -> list[dict[str, np.ndarray]]:
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

    feats = recipe.features
    kwargs = recipe.model.kwargs
    spec = kwargs.get("base_kwargs", kwargs)
    length = int(round(feats.window_s * AUDIO_FPS))
    hop = int(round(feats.eval_hop_s * AUDIO_FPS))
    faces_cfg = feats.faces
    data = SystemData(y=labels_of(samples), modes=modes, length=length, hop=hop,
                      video_frames=int(spec.get("video_frames", 15)), fps=float(faces_cfg.get("fps", 5.0)))
    keep = np.ones(len(samples), bool) if keep is None else keep
    kept = [s for s, k in zip(samples, keep, strict=True) if k]

    def spread(values: Sequence) -> list:
        it = iter(values)
        return [next(it) if k else None for k in keep]

    if modes["audio"] == "logmel":
        data.mels = spread(logmels(kept, feats, trim=modes["video"] != "faces",
                                   audio_front_end=recipe.audio_front_end))
    if modes["video"] == "au35":
        data.au = np.zeros((len(samples), 35), np.float32)
        data.au[keep] = au_features(kept, feats.au_csv)
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
    from avemo.models.registry import model_info

    kwargs = copy.deepcopy(dict(recipe.model.kwargs))
    inner = kwargs.setdefault("base_kwargs", {}) if model_info(recipe.model.name).wraps else kwargs
    inner["audio_frames"] = data.length
    inner.setdefault("n_mels", voice_settings(recipe.features)["mel"]["n_mels"])
    if modes["video"] == "au35":
        inner.update(video_frames=1, channels=1)
    elif modes["video"] == "faces":
        inner["face_size"] = int(recipe.features.faces.get("size", 48))
    inner.setdefault("label_smoothing", float(recipe.optim.label_smoothing))
    return kwargs


def create_system(recipe: Recipe, name: str | None, kwargs: dict[str, Any]) -> nn.Module:
    """A registered system by name; a missing name or kwargs that do not fit become a :class:`RecipeError`."""
    import avemo.models.systems  # noqa: F401  (registers the systems)
    from avemo.errors import ModelError
    from avemo.models.registry import create_model

    if not name:
        raise RecipeError(f"{recipe.path}: model.name (a registered system) is missing")
    try:
        return create_model(name, **kwargs)
    except (TypeError, ValueError, ModelError) as err:
        raise RecipeError(f"{recipe.path}: model {name!r} cannot be built from model.kwargs: {err}") from None


def build_system(recipe: Recipe, modes: dict[str, str], data: SystemData) -> tuple[nn.Module, list[str]]:
    """The registered system (``model.name``), with the AU adapter where ``inputs.video`` is au35."""
    name = recipe.model.name
    model = create_system(recipe, name, model_kwargs(recipe, modes, data))
    swapped: list[str] = []
    if modes["video"] == "au35":
        swapped = swap_visual_encoders(model, in_dim=data.au.shape[1],
                                       hidden=recipe.inputs.au_hidden)
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
    """The modalities of the recipe's system, read from an instance built with the recipe's own kwargs (cheap
    for these sizes; a name or kwargs that do not fit fail here, before any data is read)."""
    model = create_system(recipe, recipe.model.name, copy.deepcopy(dict(recipe.model.kwargs)))
    return tuple(getattr(model, "modalities", ("audio", "video")))


# -- training and prediction ----------------------------------------------------------------------------

class SystemTask(TrainingTask):
    """One random window per clip and epoch (with its face frames), SpecAugment on the audio, the system's
    own loss; validation accuracy over every window of the inner-validation clips."""

    def __init__(self, recipe: Recipe, data: SystemData, modes: dict[str, str], train_idx: np.ndarray,
                 val_idx: np.ndarray | None = None) -> None:
        self.recipe, self.data, self.modes, self.train_idx, self.val_idx = recipe, data, modes, train_idx, val_idx

    def build_model(self) -> nn.Module:
        return build_system(self.recipe, self.modes, self.data)[0]

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_idx) / self.recipe.optim.batch_size)

    def batches(self, epoch: int, gen: torch.Generator, rng: np.random.Generator) -> Iterator[Any]:
        batch, sa = self.recipe.optim.batch_size, dict(self.recipe.augment.specaugment)
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=gen).numpy()]
        for b in range(self.steps_per_epoch()):
            idx = order[b * batch:(b + 1) * batch]
            if idx.size < 2:  # batch norm and metric losses need two examples
                continue
            x = collate([self.data.windows(int(i), rng)[0] for i in idx])
            if "audio" in x:
                x["audio"] = spec_augment(x["audio"], gen, freq=int(sa.get("freq", 0)), time=int(sa.get("time", 0)),
                                          n=int(sa.get("n", 0)))
            yield x, torch.from_numpy(self.data.y[idx])

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, int, int]:
        x, target = batch
        out = model(**x)
        return model.loss(out, target).float(), int((out["logits"].argmax(1) == target).sum()), len(target)

    def validate(self, model: nn.Module) -> dict[str, float] | None:
        if self.val_idx is None or not self.val_idx.size:
            return None
        probs = predict(model, self.data, self.val_idx)["probs"]
        return {"val_acc": float((probs.argmax(1) == self.data.y[self.val_idx]).mean())}


def train_system(recipe: Recipe, data: SystemData, modes: dict[str, str], train_idx: np.ndarray, out_dir: Path, *,
                 fold: int, val_idx: np.ndarray | None = None, bar: Any = None) -> nn.Module:
    """Train (or resume) the system on ``train_idx`` with the :class:`~avemo.training.trainer.Trainer`."""
    task = SystemTask(recipe, data, modes, train_idx, val_idx)
    return Trainer(task, optim=recipe.optim, train=recipe.train, out_dir=out_dir, seed=(recipe.seed, fold),
                   log_extra={"fold": fold}, bar=bar, label=f"fold {fold}: epochs").fit()


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
    with loop.progress(show and distributed.is_main()) as bar:
        for fold, out in loop.folds_to_train(folds, run_dir, only, written):
            timer = loop.Timer()
            train_idx, val_idx, test_idx = (i[keep[i]] for i in (fold.train, fold.val, fold.test))
            data.standardise_au(train_idx)
            model = train_system(recipe, data, modes, train_idx, out, fold=fold.index, val_idx=val_idx, bar=bar)
            if not distributed.is_main():  # under torchrun only rank 0 predicts and writes
                continue
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
    if not distributed.is_main():
        return written
    model, swapped = build_system(recipe, modes, data)
    about = {"description": recipe.description, "architecture": recipe.model.name,
             "inputs": modes, "n_params": n_params(model), "n_params_used": used_params(model, modes, data),
             "epochs": recipe.train.epochs,
             "adapter": ({"replaced": swapped, "by": "AUEncoder (MLP over the 35 clip-level AU features)"}
                         if swapped else None)}
    loop.write_json(run_dir / "row.json", about)
    return written
