"""The voice runner: a neural voice model trained on cached log-mels, fold by fold, resumably.

Training draws a random window (``features.window_s``, 3 s) from each trimmed utterance, applies
SpecAugment and mixup, and minimises label-smoothed cross-entropy with AdamW under a warm-up +
cosine learning-rate schedule. Prediction averages the softmax over windows with hop
``features.eval_hop_s`` (test-time averaging over crops), the way the analyzer runs the model over
a long video. Each fold writes ``fold_k/checkpoint.pt`` (every epoch), ``fold_k/log.jsonl`` and,
when done, ``fold_k/predictions.npz`` (inner-validation and test probabilities, logits and
embeddings, used by evaluation and fusion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from avemo.audio.mel import MelConfig
from avemo.labels import EMOTIONS
from avemo.training import loop
from avemo.training.data import Fold, labels_of, voice_logmels, voice_settings
from avemo.training.recipe import Recipe


def frames_per_window(recipe: Recipe) -> tuple[int, int]:
    """Window and evaluation hop in frames."""
    feats = recipe.section("features")
    mel = voice_settings(feats)["mel"]
    rate = mel["sample_rate"] / mel["hop_length"]
    return int(round(float(feats.get("window_s", 3.0)) * rate)), int(round(float(feats.get("eval_hop_s", 1.0)) * rate))


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


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def model_kwargs(recipe: Recipe) -> dict[str, Any]:
    """The model's constructor arguments: the recipe's, plus n_mels and n_classes from the data."""
    kwargs = dict(recipe.section("model").get("kwargs") or {})
    kwargs.setdefault("n_mels", voice_settings(recipe.section("features"))["mel"]["n_mels"])
    kwargs.setdefault("n_classes", len(EMOTIONS))
    return kwargs


def build_model(recipe: Recipe) -> torch.nn.Module:
    from avemo.models.registry import create_model

    return create_model(recipe.section("model").get("name", "voice"), **model_kwargs(recipe))


def train_model(recipe: Recipe, mels: Sequence[np.ndarray], y: np.ndarray, train_idx: np.ndarray,
                out_dir: Path, *, fold: int, val_idx: np.ndarray | None = None, bar: Any = None) -> torch.nn.Module:
    """Train (or resume) one model on ``train_idx``; returns it in eval mode after the last epoch."""
    opt_cfg = recipe.section("optim")
    aug = recipe.section("augment")
    epochs = int(recipe.get("epochs", 40))
    batch = int(opt_cfg.get("batch_size", 32))
    base_lr = float(opt_cfg.get("lr", 3e-3))
    smoothing = float(opt_cfg.get("label_smoothing", 0.1))
    mix_alpha = float(aug.get("mixup", 0.0))
    sa = aug.get("specaugment") or {}
    gain_db = aug.get("gain_db")  # [low, high] dB: random level per example (None: off)
    log_offset = MelConfig.from_dict(recipe.section("features").get("mel") or {}).log_offset
    length, hop = frames_per_window(recipe)

    torch.manual_seed(recipe.seed * 1000 + fold)
    model = build_model(recipe)
    optim = torch.optim.AdamW(model.parameters(), lr=base_lr, weight_decay=float(opt_cfg.get("weight_decay", 0.05)))
    ckpt_path = out_dir / "checkpoint.pt"
    log_path = out_dir / "log.jsonl"
    state = loop.load_checkpoint(ckpt_path)
    start = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optim"])
        start = int(state["epoch"]) + 1
    steps_per_epoch = max(1, math.ceil(len(train_idx) / batch))
    total = epochs * steps_per_epoch
    warmup = int(opt_cfg.get("warmup_epochs", 2)) * steps_per_epoch
    n_classes = len(EMOTIONS)
    task = bar.add_task(f"fold {fold}: epochs", total=epochs, completed=start) if bar is not None else None
    for epoch in range(start, epochs):
        timer = loop.Timer()
        model.train()
        g = loop.generator(recipe.seed, fold, epoch)
        rng = np.random.default_rng([recipe.seed, fold, epoch])
        order = train_idx[torch.randperm(len(train_idx), generator=g).numpy()]
        losses, correct = [], 0
        for b in range(steps_per_epoch):
            idx = order[b * batch:(b + 1) * batch]
            if idx.size < 2:
                continue
            x = torch.from_numpy(np.stack([random_window(mels[i], length, rng) for i in idx]))
            if gain_db:
                x = gain_augment(x, g, low_db=float(gain_db[0]), high_db=float(gain_db[1]), log_offset=log_offset)
            x = spec_augment(x, g, freq=int(sa.get("freq", 0)), time=int(sa.get("time", 0)), n=int(sa.get("n", 0)))
            target = F.one_hot(torch.from_numpy(y[idx]), n_classes).float()
            target = target * (1 - smoothing) + smoothing / n_classes
            if mix_alpha > 0:
                lam = float(rng.beta(mix_alpha, mix_alpha))
                perm = torch.randperm(idx.size, generator=g)
                x = lam * x + (1 - lam) * x[perm]
                target = lam * target + (1 - lam) * target[perm]
            for group in optim.param_groups:
                group["lr"] = lr_at(epoch * steps_per_epoch + b, total, base_lr, warmup)
            logits = model(x)
            loss = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1).numpy() == y[idx]).sum())
        record: dict[str, Any] = {"fold": fold, "epoch": epoch, "train_loss": float(np.mean(losses)),
                                  "train_acc": correct / max(1, len(train_idx)), "lr_end": optim.param_groups[0]["lr"],
                                  "seconds": round(timer.seconds, 2)}
        last = epoch == epochs - 1
        if val_idx is not None and val_idx.size and (epoch % int(recipe.get("val_every", 1)) == 0 or last):
            pred = predict(model, [mels[i] for i in val_idx], length, hop)
            record["val_acc"] = float((pred["probs"].argmax(1) == y[val_idx]).mean())
            record["val_nll"] = float(-np.log(pred["probs"][np.arange(val_idx.size), y[val_idx]] + 1e-9).mean())
        loop.end_epoch(record, log_path, ckpt_path, model, optim, bar, task)
    model.eval()
    return model


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
    mels = voice_logmels(samples, recipe.section("features"))
    y = labels_of(samples)
    length, hop = frames_per_window(recipe)
    written: list[Path] = []
    with loop.progress(show) as bar:
        for fold, out in loop.folds_to_train(folds, run_dir, only, written):
            timer = loop.Timer()
            model = train_model(recipe, mels, y, fold.train, out, fold=fold.index, val_idx=fold.val, bar=bar)
            train_s = sum(r.get("seconds", 0) for r in loop.read_jsonl(out / "log.jsonl"))
            pred_path = loop.save_predictions(out / "predictions.npz", y, {"val": fold.val, "test": fold.test},
                                              lambda idx, m=model: predict(m, [mels[i] for i in idx], length, hop))
            loop.write_json(out / "fold.json", {**fold.describe(), "train_seconds": train_s,
                                                 "session_seconds": timer.seconds, "labels": list(EMOTIONS)})
            written.append(pred_path)
    return written
