"""FER-2013 holdout training of the face expression network (CPU, bf16 autocast where available).

Protocol (the corpus's own ``Usage`` split): train on *Training* (28,709 faces), choose the epoch and
the test-time augmentation on *PublicTest* (3,589), then score *PrivateTest* (3,589) once, for the
chosen model only. Nothing is tuned on PrivateTest.

Dataflow::

    fer2013 folders ──► uint8 array (N, 48, 48) cached as .npy under avemo.config.cache_root()
        ──► batch augmentation in torch (affine: crop 44 + rotation + scale + shift + mirror,
            brightness/contrast, random erasing) ──► FaceExpressionNet ──► cross-entropy (label smoothing)
        ──► per epoch: PublicTest accuracy (crop + mirror), checkpoint ``last.pt``, best weights ``best.pt``
        ──► end: TTA chosen on PublicTest, PrivateTest scored once, bundle + results.json

The learning rate follows a warm-up then cosine schedule over ``epochs``; with ``time_budget_min``
set, the schedule's progress is ``max(step fraction, elapsed-time fraction)``, so a run on a busy
machine still anneals fully inside its time budget (the epochs actually run are reported).

Run: ``python -m avemo.training.fer recipes/face_fer2013.yaml [--run-dir runs/face_fer2013]``;
from code: :func:`train_fer` ``(config, run_dir) -> results``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from avemo.config import cache_root, data_root
from avemo.labels import BASIC7
from avemo.models.encoders.visual import DEFAULT_PREPROCESSING, tta_logits
from avemo.models.registry import create_model, save_bundle
from avemo.training.metrics import classification_scores, plot_confusion

SPLIT_CODES = {"train": 0, "public_test": 1, "private_test": 2}
LABELS: tuple[str, ...] = BASIC7

DEFAULTS: dict[str, Any] = {
    "name": "face_fer2013",
    "corpus": "fer2013",
    "seed": 0,
    "data": None,
    "model": {"architecture": "face", "kwargs": {}},
    "train": {"epochs": 60, "time_budget_min": None, "batch_size": 128, "lr": 0.1, "momentum": 0.9,
              "nesterov": True, "weight_decay": 5e-4, "warmup": 0.03, "label_smoothing": 0.1,
              "bf16": True, "threads": 2, "eval_every": 3,
              "eval_dense_after": 0.6, "init": None},
    "augment": {"size": 48, "crop": 44, "rotate": 15.0, "scale": [0.85, 1.15], "shift": 3.0, "flip": True,
                "brightness": 0.2, "contrast": 0.25, "erase_p": 0.5, "erase_area": [0.02, 0.2]},
    "eval": {"tta": ["none", "flip", "tencrop"]},
    "bundle": {"name": "face.fer2013", "out": None},
}


# --------------------------------------------------------------------------- data

def load_fer_arrays(root: str | Path | None = None, *, cache: bool = True) -> dict[str, np.ndarray]:
    """All FER-2013 faces as ``x`` (N, 48, 48) uint8, ``y`` (N,) indices into BASIC7, ``split`` (N,) int8.

    ``split`` codes: 0 train, 1 public_test, 2 private_test. Read through :mod:`avemo.datasets.fer2013`
    once, then from ``cache_root()/fer2013/`` (keyed by the folder and its file count).
    """
    from avemo.datasets.fer2013 import load_fer_image, read_fer2013

    root = Path(root) if root else data_root() / "fer2013"
    corpus = read_fer2013(root)
    samples = sorted(corpus.samples, key=lambda s: (SPLIT_CODES[s.split], s.label, str(s.path)))
    key = f"{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]}_{len(samples)}"
    folder = cache_root() / "fer2013"
    files = {k: folder / f"{k}_{key}.npy" for k in ("x", "y", "split")}
    if cache and all(f.is_file() for f in files.values()):
        return {k: np.load(f) for k, f in files.items()}
    x = np.stack([load_fer_image(s) for s in samples]).astype(np.uint8)
    y = np.array([LABELS.index(s.label) for s in samples], dtype=np.int64)
    split = np.array([SPLIT_CODES[s.split] for s in samples], dtype=np.int8)
    arrays = {"x": x, "y": y, "split": split}
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        for k, f in files.items():
            np.save(f, arrays[k])
    return arrays


def augment_batch(xb: torch.Tensor, cfg: dict[str, Any], mean: float, std: float,
                  gen: torch.Generator) -> torch.Tensor:
    """uint8 ``(B, S, S)`` → normalised float ``(B, 1, crop, crop)``, randomly transformed.

    One affine warp does the random crop, rotation, scale, shift and mirror; then brightness/contrast
    jitter and random erasing (a rectangle set to the mean grey).
    """
    b, size = xb.shape[0], xb.shape[-1]
    crop = int(cfg["crop"])
    x = xb.float().unsqueeze(1) / 255.0

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    ang = u(-1, 1) * math.radians(float(cfg["rotate"]))
    scale = u(*cfg["scale"])
    half = size / 2.0
    # output pixel grid (normalised over the crop) → input coordinates (normalised over the image)
    shift_max = ((size - crop) / 2.0 + float(cfg["shift"])) / half
    tx, ty = u(-1, 1) * shift_max, u(-1, 1) * shift_max
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if cfg["flip"] else torch.ones(b)
    k = (crop / size) / scale
    cos, sin = torch.cos(ang) * k, torch.sin(ang) * k
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, [b, 1, crop, crop], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    c = u(1 - cfg["contrast"], 1 + cfg["contrast"]).view(b, 1, 1, 1)
    br = u(-cfg["brightness"], cfg["brightness"]).view(b, 1, 1, 1) * 0.5
    m = x.mean(dim=(2, 3), keepdim=True)
    x = ((x - m) * c + m + br).clamp(0, 1)
    x = (x - mean) / std
    if cfg["erase_p"] > 0:
        area = u(*cfg["erase_area"]) * crop * crop
        aspect = torch.exp(u(math.log(0.3), math.log(3.3)))
        h = (area * aspect).sqrt().clamp(1, crop)
        w = (area / aspect).sqrt().clamp(1, crop)
        y0 = torch.rand(b, generator=gen) * (crop - h)
        x0 = torch.rand(b, generator=gen) * (crop - w)
        ar = torch.arange(crop, dtype=torch.float32)
        rows = (ar.view(1, -1) >= y0.view(-1, 1)) & (ar.view(1, -1) < (y0 + h).view(-1, 1))
        cols = (ar.view(1, -1) >= x0.view(-1, 1)) & (ar.view(1, -1) < (x0 + w).view(-1, 1))
        on = (torch.rand(b, generator=gen) < cfg["erase_p"]).view(-1, 1, 1)
        mask = (rows.unsqueeze(2) & cols.unsqueeze(1) & on).unsqueeze(1)
        x = x.masked_fill(mask, 0.0)
    return x.contiguous(memory_format=torch.channels_last)


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, x: np.ndarray, *, mean: float, std: float, crop: int,
                   tta: str = "flip", batch_size: int = 512, bf16: bool = False) -> np.ndarray:
    """Logits for uint8 ``(N, 48, 48)`` faces with one test-time augmentation mode (see ``tta_logits``)."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i:i + batch_size]).float().unsqueeze(1) / 255.0
        xb = (xb - mean) / std
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out.append(tta_logits(model, xb, mode=tta, crop=crop).float())
    return torch.cat(out).numpy()


def _scores(logits: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return classification_scores(y, logits.argmax(1), LABELS)


# --------------------------------------------------------------------------- training

def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _lr_at(progress: float, base: float, warmup: float) -> float:
    if progress < warmup:
        return base * max(progress / warmup, 0.02)
    t = min(1.0, (progress - warmup) / max(1e-8, 1.0 - warmup))
    return base * 0.5 * (1.0 + math.cos(math.pi * t))


def train_fer(config: dict[str, Any], run_dir: str | Path, *, log: Any = print) -> dict[str, Any]:
    """Train on FER-2013 Training, select on PublicTest, score PrivateTest once; returns the results.

    ``run_dir`` receives ``last.pt`` (resumable checkpoint, every epoch), ``best.pt`` (best PublicTest
    weights), ``history.json``, ``results.json`` and ``confusion_private.png``. With ``bundle.out``
    set, the selected model is also written there as a bundle (safetensors + bundle.json).
    """
    cfg = _merge(DEFAULTS, config)
    tr, au = cfg["train"], cfg["augment"]
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(tr["threads"]))
    torch.manual_seed(int(cfg["seed"]))
    bf16 = bool(tr["bf16"])

    t0 = time.time()
    data = load_fer_arrays(cfg["data"])
    x, y, split = data["x"], data["y"], data["split"]
    xtr, ytr = torch.from_numpy(x[split == 0]), torch.from_numpy(y[split == 0])
    xpub, ypub = x[split == 1], y[split == 1]
    xpriv, ypriv = x[split == 2], y[split == 2]
    mean = float(xtr.float().mean() / 255.0)
    std = float(xtr.float().std() / 255.0)
    crop = int(au["crop"])
    log(f"data: train {len(xtr)}, public {len(xpub)}, private {len(xpriv)}; mean {mean:.4f} std {std:.4f}; "
        f"loaded in {time.time() - t0:.1f}s")

    arch, kwargs = cfg["model"]["architecture"], dict(cfg["model"].get("kwargs") or {})
    kwargs.setdefault("num_classes", len(LABELS))
    model = create_model(arch, **kwargs).to(memory_format=torch.channels_last)
    if tr.get("init"):  # a warm restart: start from earlier weights (e.g. a run's best.pt) with a new schedule
        init = Path(tr["init"])
        if not init.is_file():
            raise FileNotFoundError(f"{init}: train.init names weights that do not exist (run the first recipe)")
        model.load_state_dict(torch.load(init, weights_only=True))
        log(f"initialised from {init}")
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": float(tr["weight_decay"])},
                           {"params": no_decay, "weight_decay": 0.0}], lr=float(tr["lr"]),
                          momentum=float(tr["momentum"]), nesterov=bool(tr["nesterov"]))
    bs = int(tr["batch_size"])
    steps_per_epoch = len(xtr) // bs
    epochs = int(tr["epochs"])
    total_steps = epochs * steps_per_epoch
    budget = float(tr["time_budget_min"]) * 60.0 if tr.get("time_budget_min") else None

    state = {"epoch": 0, "step": 0, "elapsed": 0.0, "best_acc": -1.0, "best_epoch": -1, "history": []}
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    gen = torch.Generator().manual_seed(int(cfg["seed"]))
    if last.is_file():
        ck = torch.load(last, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = json.loads(ck["state"])
        gen.set_state(ck["gen"])
        log(f"resumed from {last} at epoch {state['epoch']} ({state['elapsed'] / 60:.1f} min trained)")
    log(f"model {arch} {kwargs}: {n_params / 1e6:.2f} M parameters; {steps_per_epoch} steps/epoch, "
        f"up to {epochs} epochs" + (f", time budget {budget / 60:.0f} min" if budget else ""))

    def progress() -> float:
        p = state["step"] / total_steps
        return max(p, state["elapsed"] / budget) if budget else p

    while state["epoch"] < epochs and progress() < 1.0:
        model.train()
        t_ep = time.time()
        perm = torch.randperm(len(xtr), generator=gen)
        tot_loss, correct, seen = 0.0, 0, 0
        for i in range(steps_per_epoch):
            t_step = time.time()
            lr = _lr_at(progress(), float(tr["lr"]), float(tr["warmup"]))
            for g in opt.param_groups:
                g["lr"] = lr
            idx = perm[i * bs:(i + 1) * bs]
            xb = augment_batch(xtr[idx], au, mean, std, gen)
            yb = ytr[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=float(tr["label_smoothing"]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
            state["step"] += 1
            state["elapsed"] += time.time() - t_step
            if progress() >= 1.0:
                break
        state["epoch"] += 1
        train_s = time.time() - t_ep
        t_ev = time.time()
        # PublicTest every epoch in the last part of the schedule, every few epochs before
        if progress() >= float(tr["eval_dense_after"]) or state["epoch"] % int(tr["eval_every"]) == 0:
            pub = predict_logits(model, xpub, mean=mean, std=std, crop=crop, tta="none", bf16=bf16)
            acc = float((pub.argmax(1) == ypub).mean())
        else:
            acc = float("nan")
        state["elapsed"] += time.time() - t_ev  # the time budget covers evaluation too
        row = {"epoch": state["epoch"], "steps": state["step"], "lr": lr, "train_loss": tot_loss / max(seen, 1),
               "train_acc": correct / max(seen, 1), "public_acc": acc, "epoch_s": train_s,
               "eval_s": time.time() - t_ev, "elapsed_min": state["elapsed"] / 60, "progress": progress()}
        state["history"].append(row)
        if acc == acc and acc > state["best_acc"]:
            state["best_acc"], state["best_epoch"] = acc, state["epoch"]
            torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, best)
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": json.dumps(state),
                    "gen": gen.get_state()}, last)
        (run_dir / "history.json").write_text(json.dumps(state["history"], indent=1))
        log(f"epoch {state['epoch']:3d} step {state['step']} lr {lr:.4f} loss {row['train_loss']:.3f} "
            f"train {row['train_acc']:.3f} "
            f"public {acc:.4f} (best {state['best_acc']:.4f} @ {state['best_epoch']}) "
            f"{train_s:.0f}s+{row['eval_s']:.0f}s, {state['elapsed'] / 60:.1f} min, progress {progress():.2f}")

    # ---- selection on PublicTest only: the best epoch, then the TTA mode
    model.load_state_dict(torch.load(best, weights_only=True))
    model.eval()
    public_by_tta = {}
    for mode in cfg["eval"]["tta"]:
        lg = predict_logits(model, xpub, mean=mean, std=std, crop=crop, tta=mode, bf16=bf16)
        public_by_tta[mode] = _scores(lg, ypub)
        log(f"PublicTest tta={mode}: acc {public_by_tta[mode]['accuracy']:.4f} "
            f"macro-F1 {public_by_tta[mode]['macro_f1']:.4f}")
    tta = max(public_by_tta, key=lambda m: public_by_tta[m]["accuracy"])
    # ---- PrivateTest, once, for the selected model and TTA
    private = _scores(predict_logits(model, xpriv, mean=mean, std=std, crop=crop, tta=tta, bf16=bf16), ypriv)
    log(f"PrivateTest (tta={tta}, reported once): acc {private['accuracy']:.4f} "
        f"macro-F1 {private['macro_f1']:.4f} UAR {private['uar']:.4f}")
    plot_confusion(private["confusion"], LABELS, run_dir / "confusion_private.png",
                   title=f"FER-2013 PrivateTest, acc {private['accuracy']:.3f}")
    hist = state["history"]
    results = {
        "name": cfg["name"], "corpus": "fer2013",
        "protocol": "train on Training; epoch and TTA selected on PublicTest; PrivateTest scored once",
        "architecture": arch, "kwargs": kwargs, "parameters": n_params, "labels": list(LABELS),
        "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
        "train_minutes": state["elapsed"] / 60,
        "seconds_per_epoch": float(np.median([h["epoch_s"] for h in hist])) if hist else None,
        "threads": int(tr["threads"]), "bf16": bf16, "tta": tta,
        "public_test": public_by_tta[tta], "public_test_by_tta": {m: s["accuracy"] for m, s in public_by_tta.items()},
        "private_test": private, "normalisation": {"mean": mean, "std": std}, "config": cfg,
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))

    out = cfg["bundle"].get("out")
    if out:
        preprocessing = {**DEFAULT_PREPROCESSING, "mean": round(mean, 4), "std": round(std, 4),
                         "resize": int(au["size"]), "crop": crop, "tta": tta}
        meta = {"corpus": "fer2013", "protocol": results["protocol"],
                "public_test_accuracy": public_by_tta[tta]["accuracy"],
                "private_test_accuracy": private["accuracy"], "private_test_macro_f1": private["macro_f1"],
                "epochs": state["epoch"], "best_epoch": state["best_epoch"],
                "license": "weights: non-commercial research use (trained on FER-2013)"}
        # float16 storage halves the bundle (loaded back into float32 parameters)
        save_bundle(out, architecture=arch, model=copy.deepcopy(model).half(), labels=LABELS, kwargs=kwargs,
                    preprocessing=preprocessing, meta={**meta, "weights_dtype": "float16"})
        import shutil

        shutil.copy(run_dir / "confusion_private.png", Path(out) / "confusion_private.png")
        write_model_card(out, results)
        log(f"bundle written to {out}")
    return results


def write_model_card(bundle_dir: str | Path, results: dict[str, Any], clips: dict[str, Any] | None = None,
                     bench: dict[str, Any] | None = None, tta: dict[str, Any] | None = None) -> Path:
    """``MODEL_CARD.md`` of a FER-2013 face bundle from :func:`train_fer`'s results, plus the clip predictions
    and FER-2013 re-evaluation of ``benchmarks/face_fer2013.py`` and the test-time views and int8 figures of
    ``benchmarks/face_tta.py`` when given."""
    pub, priv = results["public_test"], results["private_test"]
    tr = results["config"]["train"]
    recipe = f"recipes/{results['name']}.yaml"
    restart = (f" A warm restart: the weights started from `{tr['init']}` (the best PublicTest epoch of "
               "`recipes/face_fer2013.yaml`, 26 epochs from scratch with lr 0.1), and this second warm-up + cosine "
               "cycle ran on from there." if tr.get("init") else "")
    recall = "\n".join(f"| {lab} | {priv['per_class_recall'].get(lab, float('nan')):.3f} | "
                       f"{pub['per_class_recall'].get(lab, float('nan')):.3f} |" for lab in results["labels"])
    conf = "\n".join("| " + lab + " | " + " | ".join(str(v) for v in row) + " |"
                     for lab, row in zip(results["labels"], priv["confusion"], strict=True))
    lines = [
        f"# {results['config']['bundle']['name']} — face expression network trained on FER-2013",
        "",
        f"Architecture `{results['architecture']}` ({results['parameters'] / 1e6:.2f} M parameters): a compact "
        "ResNet for 44×44 grey faces (stem of two 3×3 convolutions, three residual stages 64/128/256 at "
        "22/11/6 px, global average pooling, dropout, linear). Outputs 7 classes in the order of "
        f"`avemo.labels.BASIC7`: {', '.join(results['labels'])} (no *calm*).",
        "",
        "## Input",
        "A grey face crop with FER-2013 framing (whole face, eyes about 40 % down, inter-ocular distance about "
        "0.36 of the width), e.g. `avemo.faces.align_face(image, face, size=48, grey=True)`. The crop is resized "
        f"to 48×48, scaled to [0, 1], normalised with mean {results['normalisation']['mean']:.4f} and std "
        f"{results['normalisation']['std']:.4f} (FER-2013 Training statistics), and the network sees 44×44 "
        f"views; test-time views: `{results['tta']}` (chosen on PublicTest). Settings are in `bundle.json`.",
        "",
        "## Training data and protocol",
        "FER-2013 (Goodfellow et al. 2013), the image release: Training 28,709 faces; PublicTest 3,589; "
        "PrivateTest 3,589. The corpus's own protocol: trained on **Training**; the epoch and the test-time "
        "views were selected on **PublicTest**; **PrivateTest** was scored once, for the selected model only.",
        "",
        f"Recipe `{recipe}`, command `python -m avemo.training.fer {recipe}`.{restart} "
        f"SGD (Nesterov, momentum {tr['momentum']}, lr {tr['lr']}, weight decay {tr['weight_decay']}), batch "
        f"{tr['batch_size']}, warm-up then cosine; label smoothing {tr['label_smoothing']}; augmentation: random "
        "44 crop, rotation ±15°, scale 0.85–1.15, shift, mirror, brightness/contrast jitter, random erasing; "
        "bf16 autocast on CPU. "
        f"{results['epochs_run']} epochs ({results['train_minutes']:.0f} min wall on a shared 2-core Xeon, "
        f"{results['threads']} thread{'s' if results['threads'] > 1 else ''}, about "
        f"{results['seconds_per_epoch']:.0f} s per epoch there); best "
        f"PublicTest epoch {results['best_epoch']}.",
        "",
        "## Scores",
        "| split | accuracy | macro-F1 | UAR |",
        "|---|---|---|---|",
        f"| PublicTest (selection) | {pub['accuracy']:.4f} | {pub['macro_f1']:.4f} | {pub['uar']:.4f} |",
        f"| PrivateTest (held out, once) | {priv['accuracy']:.4f} | {priv['macro_f1']:.4f} | {priv['uar']:.4f} |",
        "",
        "PublicTest accuracy by test-time views: "
        + ", ".join(f"{m} {a:.4f}" for m, a in results["public_test_by_tta"].items()) + ". "
        "These are the trainer's numbers (bf16 autocast).",
        "",
        "Per-class recall:",
        "",
        "| class | PrivateTest | PublicTest |",
        "|---|---|---|",
        recall,
        "",
        "PrivateTest confusion matrix (rows true, columns predicted, order as above); "
        "figure: `confusion_private.png`.",
        "",
        "| true \\ predicted | " + " | ".join(results["labels"]) + " |",
        "|---" * (len(results["labels"]) + 1) + "|",
        conf,
        "",
    ]
    if bench:
        lines += ["The shipped bundle (float16-stored weights, float32 inference with onnxruntime, "
                  "`python benchmarks/face_fer2013.py`): "
                  + "; ".join(f"{k} accuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}, "
                              f"{v['crops_per_second']:.0f} crops/s on 1 busy thread" for k, v in bench.items())
                  + ".", ""]
    if clips:
        lines += ["## On real video (the avemo face front end)", "",
                  "Per-frame crops from `avemo.faces.scan_video(..., size=48, grey=True)` on the shared clips; "
                  "figures `docs/face_timeline_<clip>.png` (`python benchmarks/face_fer2013.py`).", "",
                  "| clip | truth | clip-mean prediction | mean probability of the truth |", "|---|---|---|---|"]
        lines += [f"| {c['path']} | {c['truth']} | {c['predicted']} | {c['mean_probs'].get(c['truth'], 0):.2f} |"
                  for c in clips.values()]
        lines.append("")
    if tta and (Path(bundle_dir) / "model.int8.onnx").is_file():
        rows = tta["rows"]
        lines += ["## int8 network (what the analyzer runs)",
                  "`model.int8.onnx` is the same network quantized to int8 by onnxruntime's static quantization "
                  "(QDQ; int8 weights, uint8 activations), calibrated on 256 evenly spaced FER-2013 Training faces; "
                  "made by `avemo export face.fer2013 --int8`, tied to these weights by `model.int8.json`. "
                  f"On {tta['n']} PrivateTest faces with two views (centre + mirror, the analyzer's setting): "
                  f"{rows['flip, int8']['accuracy']:.1%} against {rows['flip']['accuracy']:.1%} for the float network, "
                  f"at {rows['flip, int8']['ms_per_face']:.1f} against {rows['flip']['ms_per_face']:.1f} ms a face "
                  f"(`{tta['command']}`; BENCHMARKS.md, speed section).", ""]
    lines += [
        "## Limits",
        "FER-2013 is web images of posed and spontaneous faces, mostly frontal, with label noise (human accuracy "
        "about 65 %); disgust has only 436 training faces, and fear is often confused with sad and surprised. "
        "Crops framed differently from FER-2013 (tighter, looser, rotated) lower accuracy. The model sees one "
        "frame at a time; it knows nothing of speech-related mouth movement.",
        "",
        "## License",
        "FER-2013 is released for research use. These weights are derived from it: **non-commercial research "
        "use only** (CC BY-NC-SA 4.0, as the package's shipped weights). The code is Apache-2.0.",
        "",
    ]
    path = Path(bundle_dir) / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m avemo.training.fer", description=__doc__.split("\n")[0])
    ap.add_argument("recipe", type=Path)
    ap.add_argument("--run-dir", type=Path, default=None)
    ap.add_argument("--bundle-out", type=Path, default=None, help="write the selected model as a bundle here")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--time-budget-min", type=float, default=None)
    args = ap.parse_args(argv)
    config = yaml.safe_load(args.recipe.read_text()) or {}
    config.setdefault("train", {})
    config.setdefault("bundle", {})
    if args.epochs is not None:
        config["train"]["epochs"] = args.epochs
    if args.time_budget_min is not None:
        config["train"]["time_budget_min"] = args.time_budget_min
    if args.bundle_out is not None:
        config["bundle"]["out"] = str(args.bundle_out)
    run_dir = args.run_dir or Path("runs") / config.get("name", "face_fer2013")
    results = train_fer(config, run_dir, log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
    print(json.dumps({k: results[k] for k in ("epochs_run", "best_epoch", "tta", "train_minutes")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
