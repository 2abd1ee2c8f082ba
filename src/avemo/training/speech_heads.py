"""Small heads on frozen Whisper frames, trained on several corpora with different label sets.

Dataflow::

    cached frames (T, 512) of one layer ──► [per-speaker or global standardisation] ──►
        head: "linear"  mean+std over frames ──► dropout ──► linear ──────────────────────┐
              "attn"    frame MLP 512→256 ──► attentive statistics pooling ──► linear ────┴─► logits (8)

A corpus contributes only the classes it has: the loss is the cross-entropy of the softmax taken over
that corpus's label set (:func:`masked_cross_entropy`; absent classes are unknown, not "probability 0").
Examples are weighted so that every corpus counts the same and, within a corpus, every class
(:func:`balanced_weights`). Everything is seeded; one torch thread by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from avemo.labels import EMOTIONS
from avemo.training.trainer import TrainingTask

NEG = -1e4  # logit for a class outside the corpus's label set


def masked_cross_entropy(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over each example's own label set: classes where ``mask`` is False are left out of
    the softmax (so their logits get no gradient from that example). ``weight`` per example, normalised."""
    z = logits.masked_fill(~mask, NEG)
    loss = F.cross_entropy(z, target, reduction="none")
    if weight is None:
        return loss.mean()
    return (loss * weight).sum() / weight.sum()


def balanced_weights(corpus: Sequence[str], labels: np.ndarray) -> np.ndarray:
    """Per-example weight so that each corpus has the same total weight and, within a corpus, each class;
    normalised to mean 1."""
    corpus = np.asarray(corpus, dtype=object)
    labels = np.asarray(labels)
    w = np.zeros(len(labels), dtype=np.float64)
    names = sorted(set(corpus))
    for c in names:
        in_c = corpus == c
        classes = np.unique(labels[in_c])
        for k in classes:
            sel = in_c & (labels == k)
            w[sel] = 1.0 / (len(names) * len(classes) * sel.sum())
    return (w / w.mean()).astype(np.float32)


def pooled_stats(frames: np.ndarray) -> np.ndarray:
    """``(T, D)`` -> mean and standard deviation over frames, ``(2 D,)`` float32."""
    x = np.asarray(frames, dtype=np.float32)
    return np.concatenate([x.mean(0), x.std(0)]).astype(np.float32)


def speaker_standardise(x: np.ndarray, groups: Sequence[str], eps: float = 1e-3) -> np.ndarray:
    """Each group's (speaker's or recording's) rows minus the group mean, divided by the group std."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    groups = np.asarray(groups, dtype=object)
    for g in np.unique(groups):
        sel = groups == g
        mu = x[sel].mean(0)
        sd = x[sel].std(0) if sel.sum() > 1 else np.ones_like(mu)
        out[sel] = (x[sel] - mu) / (sd + eps)
    return out


@dataclass(frozen=True)
class HeadConfig:
    kind: str = "linear"  # "linear" (on mean+std) or "attn" (attentive statistics pooling on frames)
    hidden: int = 256
    heads: int = 4
    dropout: float = 0.3
    epochs: int = 40
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    crop_s: tuple[float, float] = (1.5, 4.0)  # random frame crops while training (attn)
    lbfgs_iter: int = 100  # linear head: L-BFGS iterations (weight_decay is then the L2 penalty)
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class LinearHead(nn.Module):
    """Standardised mean+std vector ``(B, 2 D)`` -> logits."""

    def __init__(self, dim: int, n_classes: int = len(EMOTIONS), dropout: float = 0.3) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x))


class AttnStatsHead(nn.Module):
    """Frames ``(B, T, D)`` with a validity mask ``(B, T)`` -> logits: a frame MLP, multi-head attentive
    statistics pooling (weighted mean and std per head), a linear classifier."""

    def __init__(self, dim: int, n_classes: int = len(EMOTIONS), hidden: int = 256, heads: int = 4,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.att = nn.Linear(hidden, heads)
        self.heads = heads
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden, n_classes)

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)  # (B, T, H)
        a = self.att(h).masked_fill(~mask[..., None], NEG).softmax(dim=1)  # (B, T, heads)
        b, t, d = h.shape
        hh = h.view(b, t, self.heads, d // self.heads)
        mu = torch.einsum("bth,bthd->bhd", a, hh)
        var = torch.einsum("bth,bthd->bhd", a, hh**2) - mu**2
        sd = var.clamp_min(1e-6).sqrt()
        return torch.cat([mu.reshape(b, d), sd.reshape(b, d)], dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.pool(x, mask)))


def _mask_rows(corpus: Sequence[str], sets: dict[str, tuple[str, ...]]) -> np.ndarray:
    per = {c: np.array([e in ls for e in EMOTIONS]) for c, ls in sets.items()}
    return np.stack([per[c] for c in corpus])


def train_linear(x: np.ndarray, y: np.ndarray, corpus: Sequence[str], sets: dict[str, tuple[str, ...]],
                 cfg: HeadConfig) -> LinearHead:
    """A linear head on pooled vectors (already standardised): multinomial logistic regression with the
    corpus-masked loss and balanced weights, L2 penalty ``cfg.weight_decay`` (on the weights, not the
    bias), fitted full-batch with L-BFGS (deterministic, a few seconds on one core)."""
    torch.manual_seed(cfg.seed)
    model = LinearHead(x.shape[1], dropout=0.0)
    nn.init.zeros_(model.fc.weight)
    nn.init.zeros_(model.fc.bias)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    mt = torch.from_numpy(_mask_rows(corpus, sets))
    wt = torch.from_numpy(balanced_weights(corpus, y))
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=cfg.lbfgs_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = masked_cross_entropy(model.fc(xt), yt, mt, wt) + 0.5 * cfg.weight_decay * model.fc.weight.pow(2).sum()
        loss.backward()
        return loss

    model.train()
    opt.step(closure)
    return model.eval()


@torch.inference_mode()
def linear_logits(model: LinearHead, x: np.ndarray) -> np.ndarray:
    return model(torch.from_numpy(np.asarray(x, np.float32))).numpy()


def _crop(frames: np.ndarray, rng: np.random.Generator, lo: int, hi: int) -> np.ndarray:
    n = len(frames)
    length = int(rng.integers(lo, hi + 1))
    if n <= length:
        return frames
    a = int(rng.integers(0, n - length + 1))
    return frames[a:a + length]


def _batch(seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(s) for s in seqs)
    d = seqs[0].shape[1]
    x = np.zeros((len(seqs), t, d), np.float32)
    m = np.zeros((len(seqs), t), bool)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
        m[i, : len(s)] = True
    return torch.from_numpy(x), torch.from_numpy(m)


class AttnHeadTask(TrainingTask):
    """The attentive-statistics head as a :class:`~avemo.training.trainer.TrainingTask`: each epoch a permutation
    of the clips in batches, a random ``cfg.crop_s`` crop of each clip's frames (standardised with the given
    per-dimension mean/std), the corpus-masked, balanced cross-entropy. No validation: the last epoch is kept."""

    def __init__(self, frames: Sequence[np.ndarray], y: np.ndarray, corpus: Sequence[str],
                 sets: dict[str, tuple[str, ...]], cfg: HeadConfig, mean: np.ndarray, std: np.ndarray) -> None:
        self.frames, self.y, self.cfg = frames, np.asarray(y, np.int64), cfg
        self.mask_rows = _mask_rows(corpus, sets)
        self.weights = balanced_weights(corpus, self.y)
        self.mean, self.std = mean.astype(np.float32), std.astype(np.float32)
        self.crop = (int(cfg.crop_s[0] * 50), int(cfg.crop_s[1] * 50))  # Whisper frames: 50 a second

    def build_model(self) -> nn.Module:
        return AttnStatsHead(self.frames[0].shape[1], hidden=self.cfg.hidden, heads=self.cfg.heads,
                             dropout=self.cfg.dropout)

    def steps_per_epoch(self) -> int:
        return max(1, len(self.y) // self.cfg.batch)

    def batches(self, epoch: int, gen: torch.Generator, rng: np.random.Generator):
        order = rng.permutation(len(self.y))
        b = self.cfg.batch
        for s in range(self.steps_per_epoch()):
            idx = order[s * b:(s + 1) * b]
            seqs = [(_crop(self.frames[i], rng, *self.crop).astype(np.float32) - self.mean) / self.std for i in idx]
            x, m = _batch(seqs)
            yield (x, m, torch.from_numpy(self.y[idx]), torch.from_numpy(self.mask_rows[idx]),
                   torch.from_numpy(self.weights[idx]))

    def loss(self, model: nn.Module, batch) -> tuple[torch.Tensor, int, int]:
        x, m, y, mask, w = batch
        logits = model(x, m)
        right = int((logits.detach().masked_fill(~mask, NEG).argmax(1) == y).sum())
        return masked_cross_entropy(logits.float(), y, mask, w), right, len(y)


def train_attn(frames: Sequence[np.ndarray], y: np.ndarray, corpus: Sequence[str],
               sets: dict[str, tuple[str, ...]], cfg: HeadConfig, mean: np.ndarray, std: np.ndarray,
               out_dir: str | Path | None = None) -> AttnStatsHead:
    """The attentive-statistics head on per-clip frame sequences (float16 ok), standardised with the
    given per-dimension ``mean``/``std``; random crops of ``cfg.crop_s`` seconds. Trained by the house's
    :class:`~avemo.training.trainer.Trainer` (AdamW, cosine decay from ``cfg.lr`` without warm-up, the last
    epoch kept) into ``out_dir`` (its log and checkpoint; a temporary folder when None)."""
    import tempfile

    from avemo.training.recipe import Optim, Train
    from avemo.training.trainer import Trainer

    task = AttnHeadTask(frames, y, corpus, sets, cfg, mean, std)
    optim = Optim(name="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch)
    train = Train(epochs=cfg.epochs, warmup_epochs=0.0, select="last")
    with tempfile.TemporaryDirectory(prefix="avemo-attn-head-") as tmp:
        model = Trainer(task, optim=optim, train=train, out_dir=Path(out_dir or tmp), seed=(cfg.seed,)).fit()
    return model.eval()


@torch.inference_mode()
def attn_logits(model: AttnStatsHead, frames: Sequence[np.ndarray], mean: np.ndarray, std: np.ndarray,
                batch: int = 64) -> np.ndarray:
    out = []
    for a in range(0, len(frames), batch):
        seqs = [(f.astype(np.float32) - mean) / std for f in frames[a:a + batch]]
        x, m = _batch(seqs)
        out.append(model(x, m).numpy())
    return np.concatenate(out)


def fit_temperature(logits: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    """The temperature minimising the masked negative log-likelihood (grid over log T, then refined)."""
    z = np.where(mask, logits, NEG)

    def nll(t: float) -> float:
        s = z / t
        s = s - s.max(1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean())

    grid = np.exp(np.linspace(np.log(0.2), np.log(10), 60))
    best = min(grid, key=nll)
    fine = best * np.exp(np.linspace(-0.07, 0.07, 15))
    return float(min(fine, key=nll))


def fit_class_bias(logp: np.ndarray, y: np.ndarray, blocks: Sequence[str], k: int) -> float:
    """The bias on class ``k``'s logit that maximises the **8-way** likelihood of held-out predictions ``logp``
    (every class a candidate, not only a corpus's own: what a user gets), each block (a corpus) and each class
    within it weighing the same (:func:`balanced_weights`). Grid over [-6, 3], then refined.

    Used for *calm*: only RAVDESS has it, so the corpus-masked loss never tells its logit "not calm" on other
    speech, and held-out corpora without calm get calm answers (28 % of EMOVO's clips)."""
    w = balanced_weights(blocks, y).astype(np.float64)
    w /= w.sum()
    rows = np.arange(len(y))

    def nll(b: float) -> float:
        z = np.array(logp, dtype=np.float64)
        z[:, k] += b
        z -= z.max(1, keepdims=True)
        return float(-(w * (z[rows, y] - np.log(np.exp(z).sum(1)))).sum())

    grid = np.linspace(-6.0, 3.0, 91)
    best = min(grid, key=nll)
    return float(min(best + np.linspace(-0.1, 0.1, 41), key=nll))

