"""The ``face`` runner: the face expression network on FER-2013's own holdout split (CPU, bf16 autocast).

Protocol (the corpus's own ``Usage`` split): train on *Training* (28,709 faces), choose the epoch and
the test-time augmentation on *PublicTest* (3,589), then score *PrivateTest* (3,589) once, for the
chosen model only. Nothing is tuned on PrivateTest.

Dataflow::

    fer2013 folders ──► uint8 array (N, 48, 48) cached as .npy under avemo.config.cache_root()
        ──► batch augmentation in torch (affine: crop 44 + rotation + scale + shift + mirror,
            brightness/contrast, random erasing) ──► FaceExpressionNet ──► cross-entropy (label smoothing)
        ──► Trainer: PublicTest accuracy (centre crop) per validation, ``best.pt`` kept (``train.select: best``)
        ──► end: views chosen on PublicTest, PrivateTest scored once, ``results.json``, the bundle (``ship``)

Run: ``avemo train recipes/face_fer2013.yaml``; from code: :func:`train_face` ``(recipe, run_dir)``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from avemo.config import cache_root, data_root
from avemo.labels import BASIC7
from avemo.models.encoders.visual import DEFAULT_PREPROCESSING, tta_logits
from avemo.models.registry import create_model
from avemo.training.metrics import classification_scores, plot_confusion
from avemo.training.recipe import Augment, Recipe, RecipeError
from avemo.training.trainer import Trainer, TrainingTask, bf16_supported

SPLIT_CODES = {"train": 0, "public_test": 1, "private_test": 2}
LABELS: tuple[str, ...] = BASIC7

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


def augment_batch(xb: torch.Tensor, cfg: Augment, mean: float, std: float,
                  gen: torch.Generator) -> torch.Tensor:
    """uint8 ``(B, S, S)`` → normalised float ``(B, 1, crop, crop)``, randomly transformed.

    One affine warp does the random crop, rotation, scale, shift and mirror; then brightness/contrast
    jitter and random erasing (a rectangle set to the mean grey).
    """
    b, size = xb.shape[0], xb.shape[-1]
    crop = int(cfg.crop)
    x = xb.float().unsqueeze(1) / 255.0

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    ang = u(-1, 1) * math.radians(float(cfg.rotate))
    scale = u(*cfg.scale)
    half = size / 2.0
    # output pixel grid (normalised over the crop) → input coordinates (normalised over the image)
    shift_max = ((size - crop) / 2.0 + float(cfg.shift)) / half
    tx, ty = u(-1, 1) * shift_max, u(-1, 1) * shift_max
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b)
    k = (crop / size) / scale
    cos, sin = torch.cos(ang) * k, torch.sin(ang) * k
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, [b, 1, crop, crop], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    c = u(1 - cfg.contrast, 1 + cfg.contrast).view(b, 1, 1, 1)
    br = u(-cfg.brightness, cfg.brightness).view(b, 1, 1, 1) * 0.5
    m = x.mean(dim=(2, 3), keepdim=True)
    x = ((x - m) * c + m + br).clamp(0, 1)
    x = (x - mean) / std
    if cfg.erase_p > 0:
        area = u(*cfg.erase_area) * crop * crop
        aspect = torch.exp(u(math.log(0.3), math.log(3.3)))
        h = (area * aspect).sqrt().clamp(1, crop)
        w = (area / aspect).sqrt().clamp(1, crop)
        y0 = torch.rand(b, generator=gen) * (crop - h)
        x0 = torch.rand(b, generator=gen) * (crop - w)
        ar = torch.arange(crop, dtype=torch.float32)
        rows = (ar.view(1, -1) >= y0.view(-1, 1)) & (ar.view(1, -1) < (y0 + h).view(-1, 1))
        cols = (ar.view(1, -1) >= x0.view(-1, 1)) & (ar.view(1, -1) < (x0 + w).view(-1, 1))
        on = (torch.rand(b, generator=gen) < cfg.erase_p).view(-1, 1, 1)
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

class FaceTask(TrainingTask):
    """Augmented FER-2013 Training batches, label-smoothed cross-entropy, PublicTest accuracy (centre crop)."""

    def __init__(self, recipe: Recipe, data: dict[str, np.ndarray]) -> None:
        self.recipe = recipe
        x, y, split = data["x"], data["y"], data["split"]
        self.xtr, self.ytr = torch.from_numpy(x[split == 0]), torch.from_numpy(y[split == 0])
        self.xpub, self.ypub = x[split == 1], y[split == 1]
        self.mean = float(self.xtr.float().mean() / 255.0)
        self.std = float(self.xtr.float().std() / 255.0)

    def build_model(self) -> torch.nn.Module:
        kwargs = dict(self.recipe.model.kwargs)
        kwargs.setdefault("num_classes", len(LABELS))
        return create_model(self.recipe.model.name or "face", **kwargs).to(memory_format=torch.channels_last)

    def steps_per_epoch(self) -> int:
        return len(self.xtr) // self.recipe.optim.batch_size

    def batches(self, epoch: int, gen: torch.Generator, rng: np.random.Generator) -> Iterator[Any]:
        from avemo.training.fer_video import cutmix, video_batch

        bs, aug = self.recipe.optim.batch_size, self.recipe.augment
        smoothing = self.recipe.optim.label_smoothing
        perm = torch.randperm(len(self.xtr), generator=gen)
        for i in range(self.steps_per_epoch()):
            idx = perm[i * bs:(i + 1) * bs]
            xb = self.xtr[idx]
            if aug.video_p > 0 or aug.mouth_p > 0:
                xb = torch.from_numpy(video_batch(xb.numpy(), aug.video_p, aug.mouth_p, rng))
            xb = augment_batch(xb, aug, self.mean, self.std, gen)
            xb, target = cutmix(xb, self.ytr[idx], len(LABELS), aug.cutmix_p, aug.cutmix_alpha, smoothing, gen)
            yield xb, target, self.ytr[idx]

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, int, int]:
        xb, target, yb = batch
        logits = model(xb).float()
        loss = -(target * F.log_softmax(logits, dim=1)).sum(1).mean()  # label-smoothed (and CutMix-mixed) targets
        return loss, int((logits.argmax(1) == yb).sum()), len(yb)

    def validate(self, model: torch.nn.Module) -> dict[str, float]:
        pub = predict_logits(model, self.xpub, mean=self.mean, std=self.std, crop=self.recipe.augment.crop,
                             tta="none", bf16=self.recipe.train.bf16 and bf16_supported())
        return {"val_acc": float((pub.argmax(1) == self.ypub).mean())}


def train_face(recipe: Recipe, run_dir: str | Path, *, log: Any = print, bundle_dir: Path | None = None,
               show: bool = True) -> dict[str, Any]:
    """Train on FER-2013 Training, select on PublicTest, score PrivateTest once; returns the results.

    ``run_dir`` receives the :class:`~avemo.training.trainer.Trainer`'s ``checkpoint.pt``, ``best.pt`` and
    ``log.jsonl``, then ``results.json`` and ``confusion_private.png``. With ``ship.bundle`` (and
    ``ship.write``) the selected model is also written as that bundle (under ``bundle_dir``, default the
    package's weights).
    """
    from avemo.training import loop

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.protocol.name != "fer2013":
        raise RecipeError(f"{recipe.path}: a face recipe runs the fer2013 protocol, not {recipe.protocol.name!r}")
    t0 = time.time()
    data = load_fer_arrays(recipe.data.root)
    task = FaceTask(recipe, data)
    split = data["split"]
    xpriv, ypriv = data["x"][split == 2], data["y"][split == 2]
    xpub, ypub, mean, std = task.xpub, task.ypub, task.mean, task.std
    crop, bf16 = recipe.augment.crop, recipe.train.bf16 and bf16_supported()
    log(f"data: train {len(task.xtr)}, public {len(xpub)}, private {len(xpriv)}; mean {mean:.4f} std {std:.4f}; "
        f"loaded in {time.time() - t0:.1f}s")
    with loop.progress(show) as bar:
        model = Trainer(task, optim=recipe.optim, train=recipe.train, out_dir=run_dir, seed=(recipe.seed,),
                        bar=bar if show else None, log=None if show else log).fit()
    from avemo.training import distributed

    if not distributed.is_main():  # under torchrun only rank 0 scores and writes
        return {}
    history = loop.read_jsonl(run_dir / "log.jsonl")
    best = max((h for h in history if h.get("val_acc") is not None), key=lambda h: h["val_acc"], default=None)
    arch = recipe.model.name or "face"
    kwargs = {**dict(recipe.model.kwargs), "num_classes": len(LABELS)}
    n_params = sum(p.numel() for p in model.parameters())

    # ---- selection on PublicTest only: the best epoch, then the TTA mode
    public_by_tta = {}
    for mode in recipe.eval.tta:
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
    results = {
        "name": recipe.name, "corpus": "fer2013", "bundle": recipe.ship.bundle,
        "protocol": "train on Training; epoch and TTA selected on PublicTest; PrivateTest scored once",
        "architecture": arch, "kwargs": kwargs, "parameters": n_params, "labels": list(LABELS),
        "epochs_run": len(history), "best_epoch": best["epoch"] + 1 if best else None,
        "train_minutes": history[-1]["elapsed_min"] if history else 0.0,
        "seconds_per_epoch": float(np.median([h["seconds"] for h in history])) if history else None,
        "threads": torch.get_num_threads(), "bf16": bf16, "tta": tta,
        "public_test": public_by_tta[tta], "public_test_by_tta": {m: s["accuracy"] for m, s in public_by_tta.items()},
        "private_test": private, "normalisation": {"mean": mean, "std": std}, "config": dict(recipe.raw),
        "counts": {"train": len(task.xtr), "public_test": len(xpub), "private_test": len(xpriv)},
    }
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    if recipe.ship.bundle and recipe.ship.write:
        out = write_face_bundle(recipe, model, results, run_dir, bundle_dir)
        log(f"bundle written to {out}")
    return results


def write_face_bundle(recipe: Recipe, model: torch.nn.Module, results: dict[str, Any], run_dir: Path,
                      bundle_dir: Path | None = None) -> Path:
    """The selected network as the recipe's face bundle (float16 weights, ONNX checked on PublicTest faces)."""
    import shutil

    from avemo.models.bundles import WEIGHTS_DIR, save_bundle
    from avemo.models.face_input import face_input, face_views

    out = Path(bundle_dir or WEIGHTS_DIR) / str(recipe.ship.bundle)
    norm = results["normalisation"]
    preprocessing = {**DEFAULT_PREPROCESSING, "mean": round(norm["mean"], 4), "std": round(norm["std"], 4),
                     "resize": recipe.augment.size, "crop": recipe.augment.crop, "tta": results["tta"]}
    meta = {"corpus": "fer2013", "protocol": results["protocol"],
            "public_test_accuracy": results["public_test"]["accuracy"],
            "private_test_accuracy": results["private_test"]["accuracy"],
            "private_test_macro_f1": results["private_test"]["macro_f1"], "epochs": results["epochs_run"],
            "best_epoch": results["best_epoch"], "weights_dtype": "float16",
            "license": "weights: non-commercial research use (trained on FER-2013)"}
    pub = load_fer_arrays(recipe.data.root)
    faces = pub["x"][pub["split"] == 1][::56][:64]
    x = face_views(face_input(faces, size=preprocessing["resize"], mean=preprocessing["mean"],
                              std=preprocessing["std"]), crop=preprocessing["crop"], mode="none")[0]
    # float16 storage halves the bundle (loaded back into float32 parameters)
    save_bundle(out, kind="face", architecture=results["architecture"], labels=LABELS, kwargs=results["kwargs"],
                preprocessing=preprocessing, meta=meta, model=copy.deepcopy(model).float(),
                check_inputs=torch.from_numpy(x), half_weights=True)
    shutil.copy(run_dir / "confusion_private.png", out / "confusion_private.png")
    write_model_card(out, results)
    return out


def write_model_card(bundle_dir: str | Path, results: dict[str, Any], clips: dict[str, Any] | None = None,
                     bench: dict[str, Any] | None = None, tta: dict[str, Any] | None = None) -> Path:
    """``MODEL_CARD.md`` of a FER-2013 face bundle from :func:`train_fer`'s results, plus the clip predictions
    and FER-2013 re-evaluation of ``benchmarks/face_fer2013.py`` and the test-time views and int8 figures of
    ``benchmarks/face_tta.py`` when given."""
    pub, priv = results["public_test"], results["private_test"]
    tr = results["config"].get("train") or {}
    opt = {**tr, **(results["config"].get("optim") or {})}  # the optimiser's section (older results kept it in train)
    counts = results.get("counts", {"train": 28709, "public_test": 3589, "private_test": 3589})
    recipe = f"recipes/{results['name']}.yaml"
    restart = (f" A warm restart: the weights started from `{tr['init']}` (the best PublicTest epoch of "
               "`recipes/face_fer2013.yaml`, 26 epochs from scratch with lr 0.1), and this second warm-up + cosine "
               "cycle ran on from there." if tr.get("init") else "")
    recall = "\n".join(f"| {lab} | {priv['per_class_recall'].get(lab, float('nan')):.3f} | "
                       f"{pub['per_class_recall'].get(lab, float('nan')):.3f} |" for lab in results["labels"])
    conf = "\n".join("| " + lab + " | " + " | ".join(str(v) for v in row) + " |"
                     for lab, row in zip(results["labels"], priv["confusion"], strict=True))
    lines = [
        f"# {results['bundle']} — face expression network trained on FER-2013",
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
        f"FER-2013 (Goodfellow et al. 2013), the image release: Training {counts['train']:,} faces; PublicTest "
        f"{counts['public_test']:,}; PrivateTest {counts['private_test']:,}. The corpus's own protocol: trained "
        "on **Training**; the epoch and the test-time views were selected on **PublicTest**; **PrivateTest** was "
        "scored once, for the selected model only.",
        "",
        f"Recipe `{recipe}`, command `avemo train {recipe}`.{restart} "
        f"SGD (Nesterov, momentum {opt['momentum']}, lr {opt['lr']}, weight decay {opt['weight_decay']}), batch "
        f"{opt['batch_size']}, warm-up then cosine; label smoothing {opt['label_smoothing']}; augmentation: random "
        "44 crop, rotation ±15°, scale 0.85–1.15, shift, mirror, brightness/contrast jitter, random erasing"
        + ("; bf16 autocast on CPU. " if results.get("bf16", True) else ". ") +
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
        "These are the trainer's numbers" + (" (bf16 autocast)." if results.get("bf16", True) else "."),
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
