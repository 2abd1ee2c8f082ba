"""Accuracy and cost of the face model's test-time views (and its int8 network) on FER-2013 PrivateTest.

The analyzer runs the face network on every sampled frame, so its views are a speed/accuracy
trade-off; this measures both side by side in one run. Writes benchmarks/results/speed/face_tta.json.

    python benchmarks/face_tta.py [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from avemo.datasets import load_fer_image, read_corpus
from avemo.inference.predictors import FacePredictor
from avemo.labels import EMOTIONS
from avemo.provenance import git_commit, machine
from avemo.training.metrics import classification_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="PrivateTest images (a fixed, evenly spaced subset)")
    parser.add_argument("--out", default="benchmarks/results/speed/face_tta.json")
    args = parser.parse_args()
    corpus = [s for s in read_corpus("fer2013") if s.split == "private_test"]
    step = max(1, len(corpus) // args.n)
    subset = corpus[::step][: args.n]
    crops = np.stack([load_fer_image(s) for s in subset])
    truth = np.array([EMOTIONS.index(s.label) for s in subset])
    rows = {}
    for name, tta, int8 in (("none", "none", False), ("flip", "flip", False), ("tencrop", "tencrop", False),
                            ("none, int8", "none", True), ("flip, int8", "flip", True)):
        model = FacePredictor("face.fer2013", tta=tta, int8=int8, threads=1)
        if int8 and not model.int8:
            raise SystemExit("face.fer2013 ships no int8 network: run `avemo export face.fer2013 --int8` first")
        model.predict(crops[:8])  # warm up
        t0 = time.perf_counter()
        probs = model.predict(crops)
        seconds = time.perf_counter() - t0
        scores = classification_scores(truth, probs.argmax(1), EMOTIONS)
        rows[name] = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"],
                      "ms_per_face": 1000 * seconds / len(crops)}
        print(f"{name:12s} accuracy {scores['accuracy']:.4f} macro-F1 {scores['macro_f1']:.4f} "
              f"{rows[name]['ms_per_face']:.2f} ms/face")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": len(subset), "rows": rows, "bundle": "face.fer2013", "commit": git_commit(),
                               "machine": machine(), "command": "python benchmarks/face_tta.py"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
