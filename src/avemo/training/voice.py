"""The voice runner: a neural voice model trained on cached log-mels, fold by fold, resumably.

Training (:class:`VoiceTask` in the :class:`~avemo.training.trainer.Trainer`) draws a random window
(``features.window_s``, 3 s) from each trimmed utterance, applies gain augmentation, SpecAugment and
mixup, and minimises label-smoothed cross-entropy with AdamW under a warm-up + cosine schedule.
Prediction averages the softmax over windows with hop
``features.eval_hop_s`` (test-time averaging over crops), the way the analyzer runs the model over
a long video. Each fold writes ``fold_k/checkpoint.pt`` (every epoch), ``fold_k/log.jsonl`` and,
when done, ``fold_k/predictions.npz`` (inner-validation and test probabilities, logits and
embeddings, used by evaluation and fusion).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from avemo.audio.melconfig import MelConfig
from avemo.labels import EMOTIONS
from avemo.training import distributed, loop
from avemo.training.data import Fold, labels_of, voice_logmels, voice_settings
from avemo.training.recipe import Recipe
from avemo.training.trainer import Trainer, TrainingTask


def frames_per_window(recipe: Recipe) -> tuple[int, int]:
    """Window and evaluation hop in frames."""
    feats = recipe.features
    mel = voice_settings(feats)["mel"]
    rate = mel["sample_rate"] / mel["hop_length"]
    return int(round(feats.window_s * rate)), int(round(feats.eval_hop_s * rate))


def _pad(mel: np.ndarray, length: int, offset: int) -> np.ndarray:
    """``mel`` placed at ``offset`` in a window of ``length`` frames, the rest at each band's floor."""
    out = np.repeat(mel.min(axis=1, keepdims=True), length, axis=1)
    out[:, offset:offset + mel.shape[1]] = mel
    return out


def random_window(mel: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-frame window of ``mel``; a shorter utterance lands at a random offset."""
    n = mel.shape[1]
    if n >= length:
        start = int(rng.integers(0, n - length + 1))
        return mel[:, start:start + length]
    return _pad(mel, length, int(rng.integers(0, length - n + 1)))


def eval_windows(mel: np.ndarray, length: int, hop: int) -> np.ndarray:
    """Windows of ``length`` frames every ``hop`` frames covering ``mel`` (one centred window when shorter)."""
    n = mel.shape[1]
    if n <= length:
        return _pad(mel, length, (length - n) // 2)[None]
    starts = list(range(0, n - length + 1, hop))
    if starts[-1] != n - length:
        starts.append(n - length)
    return np.stack([mel[:, s:s + length] for s in starts])


def spec_augment(x: torch.Tensor, g: torch.Generator, *, freq: int, time: int, n: int) -> torch.Tensor:
    """Frequency and time masks (``n`` of each, widths up to ``freq`` bands / ``time`` frames), filled
    with each example's mean so that they vanish under the model's normalisation."""
    if n <= 0:
        return x
    x = x.clone()
    b, n_mels, t = x.shape
    fill = x.mean(dim=(1, 2))
    for i in range(b):
        for _ in range(n):
            w = int(torch.randint(0, freq + 1, (1,), generator=g))
            f0 = int(torch.randint(0, max(1, n_mels - w), (1,), generator=g))
            x[i, f0:f0 + w, :] = fill[i]
            w = int(torch.randint(0, time + 1, (1,), generator=g))
            t0 = int(torch.randint(0, max(1, t - w), (1,), generator=g))
            x[i, :, t0:t0 + w] = fill[i]
    return x


def gain_augment(x: torch.Tensor, g: torch.Generator, *, low_db: float, high_db: float,
                 log_offset: float) -> torch.Tensor:
    """The same audio at a random level: each example's power scaled by ``10^(d/10)``, ``d`` uniform in
    ``[low_db, high_db]``. Exact for ``log(mel + log_offset)`` features: the floor stays where it is, so
    quieter copies sink towards it as quieter recordings do."""
    d = low_db + (high_db - low_db) * torch.rand(x.shape[0], 1, 1, generator=g)
    power = (x.exp() - log_offset).clamp_min(0.0)
    return torch.log(power * 10 ** (d / 10) + log_offset)


def model_kwargs(recipe: Recipe) -> dict[str, Any]:
    """The model's constructor arguments: the recipe's, plus n_mels and n_classes from the data."""
    kwargs = dict(recipe.model.kwargs)
    kwargs.setdefault("n_mels", voice_settings(recipe.features)["mel"]["n_mels"])
    kwargs.setdefault("n_classes", len(EMOTIONS))
    return kwargs


def build_model(recipe: Recipe) -> torch.nn.Module:
    from avemo.models.registry import create_model

    return create_model(recipe.model.name or "voice", **model_kwargs(recipe))


class VoiceTask(TrainingTask):
    """Random windows of cached log-mels with gain augmentation, SpecAugment and mixup; soft-target
    cross-entropy (label smoothing); validation accuracy and NLL over each utterance's windows."""

    def __init__(self, recipe: Recipe, mels: Sequence[np.ndarray], y: np.ndarray, train_idx: np.ndarray,
                 val_idx: np.ndarray | None = None) -> None:
        self.recipe, self.mels, self.y, self.train_idx, self.val_idx = recipe, mels, y, train_idx, val_idx
        self.length, self.hop = frames_per_window(recipe)
        self.log_offset = MelConfig.from_dict(dict(recipe.features.mel)).log_offset

    def build_model(self) -> torch.nn.Module:
        return build_model(self.recipe)

    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_idx) / self.recipe.optim.batch_size)

    def batches(self, epoch: int, gen: torch.Generator, rng: np.random.Generator) -> Iterator[Any]:
        aug, batch, n_classes = self.recipe.augment, self.recipe.optim.batch_size, len(EMOTIONS)
        smoothing = self.recipe.optim.label_smoothing
        sa = dict(aug.specaugment)
        order = self.train_idx[torch.randperm(len(self.train_idx), generator=gen).numpy()]
        for b in range(self.steps_per_epoch()):
            idx = order[b * batch:(b + 1) * batch]
            if idx.size < 2:
                continue
            x = torch.from_numpy(np.stack([random_window(self.mels[i], self.length, rng) for i in idx]))
            if aug.gain_db:
                x = gain_augment(x, gen, low_db=float(aug.gain_db[0]), high_db=float(aug.gain_db[1]),
                                 log_offset=self.log_offset)
            x = spec_augment(x, gen, freq=int(sa.get("freq", 0)), time=int(sa.get("time", 0)), n=int(sa.get("n", 0)))
            target = F.one_hot(torch.from_numpy(self.y[idx]), n_classes).float()
            target = target * (1 - smoothing) + smoothing / n_classes
            if aug.mixup > 0:
                lam = float(rng.beta(aug.mixup, aug.mixup))
                perm = torch.randperm(idx.size, generator=gen)
                x = lam * x + (1 - lam) * x[perm]
                target = lam * target + (1 - lam) * target[perm]
            yield x, target, torch.from_numpy(self.y[idx])

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, int, int]:
        x, target, y = batch
        logits = model(x).float()
        loss = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
        return loss, int((logits.argmax(1) == y).sum()), len(y)

    def validate(self, model: torch.nn.Module) -> dict[str, float] | None:
        if self.val_idx is None or not self.val_idx.size:
            return None
        probs = predict(model, [self.mels[i] for i in self.val_idx], self.length, self.hop)["probs"]
        y = self.y[self.val_idx]
        return {"val_acc": float((probs.argmax(1) == y).mean()),
                "val_nll": float(-np.log(probs[np.arange(y.size), y] + 1e-9).mean())}


def train_model(recipe: Recipe, mels: Sequence[np.ndarray], y: np.ndarray, train_idx: np.ndarray,
                out_dir: Path, *, fold: int, val_idx: np.ndarray | None = None, bar: Any = None) -> torch.nn.Module:
    """Train (or resume) one model on ``train_idx`` with the :class:`~avemo.training.trainer.Trainer`."""
    task = VoiceTask(recipe, mels, y, train_idx, val_idx)
    return Trainer(task, optim=recipe.optim, train=recipe.train, out_dir=out_dir, seed=(recipe.seed, fold),
                   log_extra={"fold": fold}, bar=bar, label=f"fold {fold}: epochs").fit()


@torch.no_grad()
def predict(model: torch.nn.Module, mels: Sequence[np.ndarray], length: int, hop: int,
            batch: int = 64) -> dict[str, np.ndarray]:
    """Per utterance: mean softmax probabilities, mean logits and mean embedding over its windows."""
    was_training = model.training
    model.eval()
    windows = [eval_windows(m, length, hop) for m in mels]
    owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(windows)])
    flat = np.concatenate(windows)
    logits, embs = [], []
    for s in range(0, len(flat), batch):
        x = torch.from_numpy(flat[s:s + batch])
        e = model.embedding(x)
        embs.append(e.numpy())
        logits.append(model.head(e).numpy())
    logits_a, embs_a = np.concatenate(logits), np.concatenate(embs)
    probs_a = torch.softmax(torch.from_numpy(logits_a), 1).numpy()
    out = {name: np.stack([a[owner == i].mean(0) for i in range(len(mels))])
           for name, a in (("probs", probs_a), ("logits", logits_a), ("embedding", embs_a))}
    model.train(was_training)
    return out


def run_folds(recipe: Recipe, samples: Sequence, folds: Sequence[Fold], run_dir: Path,
              only: Sequence[int] | None = None, show: bool = True) -> list[Path]:
    """Train every fold (resuming where a checkpoint exists) and store its predictions."""
    mels = voice_logmels(samples, recipe.features)
    y = labels_of(samples)
    length, hop = frames_per_window(recipe)
    written: list[Path] = []
    with loop.progress(show and distributed.is_main()) as bar:
        for fold, out in loop.folds_to_train(folds, run_dir, only, written):
            timer = loop.Timer()
            model = train_model(recipe, mels, y, fold.train, out, fold=fold.index, val_idx=fold.val, bar=bar)
            if not distributed.is_main():  # under torchrun only rank 0 predicts and writes
                continue
            train_s = sum(r.get("seconds", 0) for r in loop.read_jsonl(out / "log.jsonl"))
            pred_path = loop.save_predictions(out / "predictions.npz", y, {"val": fold.val, "test": fold.test},
                                              lambda idx, m=model: predict(m, [mels[i] for i in idx], length, hop))
            loop.write_json(out / "fold.json", {**fold.describe(), "train_seconds": train_s,
                                                 "session_seconds": timer.seconds, "labels": list(EMOTIONS)})
            written.append(pred_path)
    return written
