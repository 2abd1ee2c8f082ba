"""Benchmark of the shipped face expression bundle: FER-2013 scores and per-frame timelines on real clips.

1. Accuracy: the bundle (float32, its own preprocessing and test-time views, via
   :class:`avemo.models.encoders.visual.FaceEmotionModel`) on FER-2013 PublicTest (the selection
   set) and PrivateTest (the held-out report set): accuracy, macro-F1, UAR, per-class recall,
   confusion matrix; plus inference speed in crops per second.
2. Real video: the face front end (:func:`avemo.faces.scan_video`, MediaPipe landmarks, FER-framed
   48×48 grey crops) on the shared clips, the bundle on every sampled frame, and one figure per clip
   (``docs/face_timeline_<clip>.png``) with the probability of each class over time.

Writes ``benchmarks/results/face_fer2013.json`` (with the command, commit and machine) and
``docs/face_confusion_private.png``.

Run: ``python benchmarks/face_fer2013.py [--bundle face.fer2013] [--threads 1] [--backend onnx|torch]
[--skip-fer] [--skip-clips]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIPS = {
    "cremad_ANG": ("clips/cremad/1001_DFA_ANG_XX.flv", "angry"),
    "cremad_HAP": ("clips/cremad/1001_DFA_HAP_XX.flv", "happy"),
    "cremad_SAD": ("clips/cremad/1001_DFA_SAD_XX.flv", "sad"),
    "ravdess_surprised": ("clips/ravdess/01-01-08-02-01-01-19.mp4", "surprised"),
}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def fer_scores(model, data_root: Path) -> dict:
    """PublicTest and PrivateTest scores of ``model`` (a FaceEmotionModel), and its speed."""
    from avemo.datasets.fer2013 import load_fer_image, read_fer2013
    from avemo.labels import index
    from avemo.training.metrics import classification_scores

    corpus = read_fer2013(data_root / "fer2013")
    out: dict = {}
    for split in ("public_test", "private_test"):
        samples = sorted((s for s in corpus.samples if s.split == split), key=lambda s: str(s.path))
        x = np.stack([load_fer_image(s) for s in samples])
        y = index(model.labels, [s.label for s in samples])
        t = time.perf_counter()
        probs = model.predict(x)
        dt = time.perf_counter() - t
        scores = classification_scores(y, probs.argmax(1), model.labels)
        scores["crops_per_second"] = len(x) / dt
        out[split] = scores
        print(f"{split}: acc {scores['accuracy']:.4f} macro-F1 {scores['macro_f1']:.4f} "
              f"UAR {scores['uar']:.4f} ({len(x) / dt:.0f} crops/s)")
    return out


def clip_timelines(model, data_root: Path, docs: Path, fps: float = 10.0) -> dict:
    """Run the face front end and the model on each shared clip; plot and summarise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from avemo.faces import scan_video

    size = int(model.preprocessing.get("resize", 48))
    out: dict = {}
    for name, (rel, truth) in CLIPS.items():
        path = data_root / rel
        if not path.is_file():
            print(f"{name}: {path} missing, skipped")
            continue
        frames = scan_video(path, fps=fps, size=size, grey=True)
        times = np.array([f.time for f in frames])
        found = np.array([f.main_crop is not None for f in frames])
        probs = np.full((len(frames), len(model.labels)), np.nan, dtype=np.float32)
        if found.any():
            probs[found] = model.predict(np.stack([f.main_crop for f in frames if f.main_crop is not None]))
        mean = np.nanmean(probs[found], axis=0) if found.any() else np.full(len(model.labels), np.nan)
        votes = np.bincount(probs[found].argmax(1), minlength=len(model.labels)) if found.any() else None
        top = model.labels[int(np.nanargmax(mean))] if found.any() else None
        out[name] = {
            "path": rel, "truth": truth, "frames": len(frames), "faces_found": int(found.sum()),
            "mean_probs": {lab: float(p) for lab, p in zip(model.labels, mean, strict=True)},
            "predicted": top, "correct": top == truth,
            "frame_votes": ({lab: int(v) for lab, v in zip(model.labels, votes, strict=True)}
                            if votes is not None else {}),
        }
        fig, (ax, axc) = plt.subplots(1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [4, 1]})
        for j, lab in enumerate(model.labels):
            ax.plot(times, probs[:, j], label=lab, lw=2 if lab in (truth, top) else 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("probability")
        ax.set_title(f"{Path(rel).name}: truth {truth}, clip mean → {top} ({mean.max():.2f})")
        ax.legend(fontsize=7, ncol=4, loc="upper left")
        mid = [f.main_crop for f in frames if f.main_crop is not None]
        if mid:
            axc.imshow(mid[len(mid) // 2], cmap="gray", vmin=0, vmax=255)
        axc.set_title("middle crop", fontsize=8)
        axc.axis("off")
        fig.tight_layout()
        docs.mkdir(parents=True, exist_ok=True)
        fig.savefig(docs / f"face_timeline_{name}.png", dpi=100)
        plt.close(fig)
        print(f"{name}: truth {truth}, predicted {top}; mean "
              + " ".join(f"{lab} {p:.2f}" for lab, p in zip(model.labels, mean, strict=True)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", default="face.fer2013")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", choices=("onnx", "torch"), default="onnx",
                    help="onnx: onnxruntime, as avemo's analyzer runs the bundle; torch: eager float32")
    ap.add_argument("--fps", type=float, default=10.0, help="frame rate sampled from the clips")
    ap.add_argument("--skip-fer", action="store_true")
    ap.add_argument("--skip-clips", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "face_fer2013.json")
    ap.add_argument("--card-from", type=Path, default=None,
                    help="a training run folder (its results.json): rewrite the bundle's MODEL_CARD.md with it "
                         "and these measurements")
    args = ap.parse_args(argv)

    import torch

    from avemo.config import data_root
    from avemo.models.encoders.visual import FaceEmotionModel
    from avemo.training.metrics import plot_confusion

    torch.set_num_threads(args.threads)
    model = FaceEmotionModel(args.bundle)
    if args.backend == "onnx":
        from avemo.inference.runtime import OnnxModule, onnx_cache_path

        crop = int(model.preprocessing["crop"])
        model.model = OnnxModule(model.model, torch.zeros(2, 1, crop, crop), onnx_cache_path(model.bundle, "crops"),
                                 threads=args.threads)
    root = data_root()
    result: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    command = " ".join(["python", f"benchmarks/{Path(__file__).name}", *(argv or sys.argv[1:])])
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU, torch {torch.__version__}, "
               f"{args.threads} threads, {args.backend}")
    result.update({
        "bundle": model.bundle.name, "command": command, "commit": _commit(), "machine": machine,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "preprocessing": model.preprocessing, "labels": list(model.labels),
    })
    if not args.skip_fer:
        result["fer2013"] = fer_scores(model, root)
        result["protocol"] = "FER-2013: trained on Training, epoch and TTA selected on PublicTest, PrivateTest held out"
        priv = result["fer2013"]["private_test"]
        plot_confusion(priv["confusion"], model.labels, ROOT / "docs" / "face_confusion_private.png",
                       title=f"{model.bundle.name} on FER-2013 PrivateTest (acc {priv['accuracy']:.3f})")
    if not args.skip_clips:
        result["clips"] = clip_timelines(model, root, ROOT / "docs", fps=args.fps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")
    if args.card_from is not None:
        from avemo.training.fer import write_model_card

        tta_path = ROOT / "benchmarks" / "results" / "speed" / "face_tta.json"
        card = write_model_card(model.bundle.path, json.loads((args.card_from / "results.json").read_text()),
                                clips=result.get("clips"), bench=result.get("fer2013"),
                                tta=json.loads(tta_path.read_text()) if tta_path.is_file() else None)
        print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
