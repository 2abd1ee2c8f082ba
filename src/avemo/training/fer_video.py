"""FER-2013 face network trained for video: camera-like degradations, CutMix, weight averaging.

The face network of ``face.fer2013`` learnt clean 48×48 web photos. Faces from a talking-face video
reach it blurred, compressed, resampled from another size, under dim light, and with the mouth moving
with speech. This trainer continues (or starts) the same network with those conditions in the
augmentation, so the weights see them, and keeps an exponential moving average of the weights (EMA),
which is what is evaluated and saved.

Protocol as :mod:`avemo.training.fer`: train on *Training*; the epoch (of the EMA weights) is chosen on
*PublicTest*; PrivateTest is never looked at here (``benchmarks/face_crossdomain.py`` scores it).

Dataflow::

    uint8 (B, 48, 48) ──► camera degradation, per face with probability ``video.p`` (one of: Gaussian blur,
        resampling through 14–32 px, sensor noise, low light (gamma, gain, noise), JPEG at 4× size)
        ──► mouth occlusion (p ``video.mouth_p``: the lower face greyed, as a talking mouth is uninformative)
        ──► fer.augment_batch (crop 44, rotation, scale, shift, mirror, brightness/contrast, erasing)
        ──► CutMix (p ``cutmix.p``) ──► FaceExpressionNet ──► soft cross-entropy (label smoothing)
        ──► EMA of weights and BN buffers ──► PublicTest every ``eval_every`` epochs ──► best.pt, last.pt

Run: ``python -m avemo.training.fer_video recipes/face_fer2013_video.yaml [--run-dir runs/...]``
(resumes from ``last.pt`` when it exists).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn import functional as F

from avemo.labels import BASIC7
from avemo.training.fer import _lr_at, _merge, augment_batch, load_fer_arrays, predict_logits

DEFAULTS: dict[str, Any] = {
    "name": "face_fer2013_video",
    "seed": 0,
    "data": None,
    "model": {"architecture": "face", "kwargs": {"widths": [32, 64, 128, 256], "blocks": [1, 1, 1],
                                                  "dropout": 0.3, "num_classes": 7}},
    "init": "face.fer2013",  # a bundle name/folder or a state-dict file; None: from scratch
    "train": {"epochs": 40, "time_budget_min": 80, "batch_size": 128, "lr": 0.03, "momentum": 0.9,
              "nesterov": True, "weight_decay": 5e-4, "warmup": 0.05, "label_smoothing": 0.1, "bf16": True,
              "threads": 2, "eval_every": 2, "ema": 0.998},
    "augment": {"size": 48, "crop": 44, "rotate": 15.0, "scale": [0.85, 1.15], "shift": 3.0, "flip": True,
                "brightness": 0.2, "contrast": 0.25, "erase_p": 0.3, "erase_area": [0.02, 0.2]},
    "video": {"p": 0.5, "mouth_p": 0.08},
    "cutmix": {"p": 0.5, "alpha": 1.0},
}

DEGRADATIONS = ("blur", "resample", "noise", "lowlight", "jpeg")


def degrade_face(img: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One camera-like degradation of a uint8 grey face (any size), drawn from ``rng``; same shape back.

    ``blur``: Gaussian, sigma 0.4–1.3 px of a 48 px face; ``resample``: down to 14–32 px and back
    (a small face in a large frame); ``noise``: Gaussian sensor noise, sigma 2–12 grey levels;
    ``lowlight``: gamma 1.3–2.2, gain 0.35–0.8, then noise; ``jpeg``: upscaled 4×, JPEG quality 10–50,
    back down (blocking as a compressed video frame has it).
    """
    h, w = img.shape[:2]
    s = w / 48.0
    x = img.astype(np.float32)
    if kind == "blur":
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.4, 1.3)) * s)
    elif kind == "resample":
        side = int(rng.integers(14, 33))
        small = cv2.resize(x, (side, side), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if rng.random() < 0.5 else cv2.INTER_CUBIC)
    elif kind == "noise":
        x = x + rng.normal(0.0, rng.uniform(2.0, 12.0), x.shape).astype(np.float32)
    elif kind == "lowlight":
        x = 255.0 * (x / 255.0) ** rng.uniform(1.3, 2.2) * rng.uniform(0.35, 0.8)
        x = x + rng.normal(0.0, rng.uniform(1.0, 6.0), x.shape).astype(np.float32)
    elif kind == "jpeg":
        big = cv2.resize(img, (w * 4, h * 4), interpolation=cv2.INTER_CUBIC)
        ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(10, 51))])
        if ok:
            x = cv2.resize(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE), (w, h), interpolation=cv2.INTER_AREA)
            x = x.astype(np.float32)
    else:
        raise ValueError(f"unknown degradation {kind!r}; one of {DEGRADATIONS}")
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def occlude_mouth(img: np.ndarray, value: int | None = None) -> np.ndarray:
    """The lower face (FER framing: rows from 0.66 of the height, columns 0.2–0.8) set to one grey."""
    out = img.copy()
    h, w = img.shape[:2]
    r0, c0, c1 = int(round(0.66 * h)), int(round(0.2 * w)), int(round(0.8 * w))
    out[r0:, c0:c1] = int(img.mean()) if value is None else value
    return out


def occlude_eyes(img: np.ndarray, value: int | None = None) -> np.ndarray:
    """A band over both eyes (FER framing: eyes at 0.40 of the height) set to one grey."""
    out = img.copy()
    h, w = img.shape[:2]
    r0, r1, c0, c1 = int(round(0.29 * h)), int(round(0.50 * h)), int(round(0.12 * w)), int(round(0.88 * w))
    out[r0:r1, c0:c1] = int(img.mean()) if value is None else value
    return out


def video_batch(x: np.ndarray, cfg: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Camera degradations and mouth occlusion over a uint8 batch ``(B, 48, 48)`` (a new array)."""
    out = x.copy()
    for i in range(len(out)):
        if rng.random() < float(cfg["p"]):
            out[i] = degrade_face(out[i], DEGRADATIONS[int(rng.integers(len(DEGRADATIONS)))], rng)
        if rng.random() < float(cfg["mouth_p"]):
            out[i] = occlude_mouth(out[i])
    return out


def cutmix(x: torch.Tensor, y: torch.Tensor, n_classes: int, p: float, alpha: float, smoothing: float,
           gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix (Yun et al. 2019) on a normalised batch: soft targets ``(B, C)`` (with label smoothing)."""
    b, _, h, w = x.shape
    target = F.one_hot(y, n_classes).float() * (1 - smoothing) + smoothing / n_classes
    if p <= 0 or float(torch.rand(1, generator=gen)) >= p:
        return x, target
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 0.5
    perm = torch.randperm(b, generator=gen)
    ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / float(h * w)
    return x, lam * target + (1 - lam) * target[perm]


def _initial_state(init: str | None) -> dict[str, torch.Tensor] | None:
    if not init:
        return None
    p = Path(init)
    if p.is_file():
        return torch.load(p, weights_only=True)
    from avemo.models.registry import load

    return {k: v.float() for k, v in load(init).model.state_dict().items()}


def train_fer_video(config: dict[str, Any], run_dir: str | Path, *, log: Any = print) -> dict[str, Any]:
    """Train (resumably) and return the run's summary; see the module docstring."""
    from avemo.models.registry import create_model

    cfg = _merge(DEFAULTS, config)
    tr, au = cfg["train"], cfg["augment"]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg, indent=1))
    torch.set_num_threads(int(tr["threads"]))
    torch.manual_seed(int(cfg["seed"]))
    rng = np.random.default_rng(int(cfg["seed"]))
    bf16 = bool(tr["bf16"])

    data = load_fer_arrays(cfg["data"])
    x, y, split = data["x"], data["y"], data["split"]
    xtr, ytr = x[split == 0], torch.from_numpy(y[split == 0])
    xpub, ypub = x[split == 1], y[split == 1]
    mean = float(xtr.astype(np.float32).mean() / 255.0)
    std = float(xtr.astype(np.float32).std() / 255.0)
    crop = int(au["crop"])
    kwargs = dict(cfg["model"]["kwargs"])
    model = create_model(cfg["model"]["architecture"], **kwargs).to(memory_format=torch.channels_last)
    init = _initial_state(cfg.get("init"))
    if init is not None:
        model.load_state_dict(init)
        log(f"initialised from {cfg['init']}")
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": float(tr["weight_decay"])},
                           {"params": no_decay, "weight_decay": 0.0}], lr=float(tr["lr"]),
                          momentum=float(tr["momentum"]), nesterov=bool(tr["nesterov"]))
    bs = int(tr["batch_size"])
    steps_per_epoch = len(xtr) // bs
    total_steps = int(tr["epochs"]) * steps_per_epoch
    budget = float(tr["time_budget_min"]) * 60.0 if tr.get("time_budget_min") else None
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    state: dict[str, Any] = {"epoch": 0, "step": 0, "elapsed": 0.0, "best_acc": -1.0, "best_epoch": -1,
                             "history": []}
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    if last.is_file():
        ck = torch.load(last, weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["opt"])
        state = json.loads(ck["state"])
        gen.set_state(ck["gen"])
        rng = np.random.default_rng(ck["rng_seed"])
        log(f"resumed at epoch {state['epoch']} ({state['elapsed'] / 60:.1f} min trained)")

    def progress() -> float:
        p = state["step"] / total_steps
        return max(p, state["elapsed"] / budget) if budget else p

    decay_ema = float(tr["ema"])
    while state["epoch"] < int(tr["epochs"]) and progress() < 1.0:
        model.train()
        t_ep = time.time()
        perm = torch.randperm(len(xtr), generator=gen).numpy()
        tot, seen = 0.0, 0
        for i in range(steps_per_epoch):
            t_step = time.time()
            lr = _lr_at(progress(), float(tr["lr"]), float(tr["warmup"]))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[i * bs:(i + 1) * bs]
            xb = torch.from_numpy(video_batch(xtr[idx], cfg["video"], rng))
            xb = augment_batch(xb, au, mean, std, gen)
            xb, target = cutmix(xb, ytr[idx], len(BASIC7), float(cfg["cutmix"]["p"]), float(cfg["cutmix"]["alpha"]),
                                float(tr["label_smoothing"]), gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(xb.contiguous(memory_format=torch.channels_last))
            loss = torch.sum(-target * F.log_softmax(logits.float(), 1), 1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                d = min(decay_ema, (1 + state["step"]) / (10 + state["step"]))
                for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                    pe.mul_(d).add_(pm.detach(), alpha=1 - d)
                for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
                    be.copy_(bm)
            tot += float(loss.detach()) * len(idx)
            seen += len(idx)
            state["step"] += 1
            state["elapsed"] += time.time() - t_step
            if progress() >= 1.0:
                break
        state["epoch"] += 1
        train_s = time.time() - t_ep
        t_ev = time.time()
        acc = float("nan")
        if state["epoch"] % int(tr["eval_every"]) == 0 or progress() >= 1.0:
            pub = predict_logits(ema, xpub, mean=mean, std=std, crop=crop, tta="none", bf16=bf16)
            acc = float((pub.argmax(1) == ypub).mean())
        state["elapsed"] += time.time() - t_ev
        row = {"epoch": state["epoch"], "step": state["step"], "lr": lr, "train_loss": tot / max(seen, 1),
               "public_acc_ema": acc, "epoch_s": train_s, "elapsed_min": state["elapsed"] / 60,
               "progress": progress()}
        state["history"].append(row)
        if acc == acc and acc > state["best_acc"]:
            state["best_acc"], state["best_epoch"] = acc, state["epoch"]
            torch.save({k: v.detach().clone() for k, v in ema.state_dict().items()}, best)
        torch.save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                    "state": json.dumps(state), "gen": gen.get_state(),
                    "rng_seed": int(rng.integers(2**31))}, last)
        (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
        log(f"epoch {state['epoch']:3d} lr {lr:.4f} loss {row['train_loss']:.3f} public(EMA) {acc:.4f} "
            f"(best {state['best_acc']:.4f} @ {state['best_epoch']}) {train_s:.0f}s, "
            f"{state['elapsed'] / 60:.1f} min, progress {progress():.2f}")
    summary = {"name": cfg["name"], "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
               "public_acc_ema_none": state["best_acc"], "train_minutes": state["elapsed"] / 60,
               "normalisation": {"mean": mean, "std": std}, "kwargs": kwargs, "config": cfg,
               "protocol": "train on Training; EMA weights' epoch chosen on PublicTest (centre crop); "
                           "PrivateTest not looked at here"}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m avemo.training.fer_video", description=__doc__.split("\n")[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--time-budget-min", type=float, default=None)
    args = ap.parse_args(argv)
    config = yaml.safe_load(args.recipe.read_text()) or {}
    if args.time_budget_min is not None:
        config.setdefault("train", {})["time_budget_min"] = args.time_budget_min
    run_dir = args.run_dir or Path("runs") / config.get("name", DEFAULTS["name"])
    out = train_fer_video(config, run_dir, log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
    print(json.dumps({k: out[k] for k in ("epochs_run", "best_epoch", "public_acc_ema_none", "train_minutes")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
