"""The text model's probabilities on CARER validation and test sentences, for the fusion benchmark's triples.

    PYTHONPATH=<a tree whose avemo ships text.carer>/src python benchmarks/fusion_text_probs.py

Runs the ``text.carer`` bundle (its numpy runtime) on ``text-emotion-carer/{val,test}.txt`` (sentences whose
label has a canonical class; ``love`` has none) and writes ``benchmarks/results/fusion_crossdomain/
text_carer_probs.csv.gz``: split, row (line number in the file), label, then one probability column per class
of the bundle. Validation rows are what fusion fitting may use, test rows what the report scores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import avemo
from avemo.config import data_root
from avemo.datasets import read_carer
from avemo.provenance import git_commit

OUT = Path(__file__).resolve().parent / "results" / "fusion_crossdomain"


def main() -> None:
    bundle = avemo.load("text.carer")
    model = bundle.get_model()
    corpus = read_carer(data_root() / "text-emotion-carer", splits=("val", "test"))
    rows = []
    for split in ("val", "test"):
        samples = [s for s in corpus if s.split == split and s.label in bundle.labels]
        texts = [s.text for s in samples]
        z = np.asarray(model(texts), dtype=np.float64)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        df = pd.DataFrame({"split": split, "row": [s.meta["row"] for s in samples], "label": [s.label for s in samples]})
        for j, name in enumerate(bundle.labels):
            df[name] = np.round(p[:, j], 5)
        rows.append(df)
        print(split, len(df), "accuracy", float(np.mean(p.argmax(1) == [bundle.labels.index(s.label) for s in samples])))
    OUT.mkdir(parents=True, exist_ok=True)
    out = pd.concat(rows, ignore_index=True)
    out.attrs["bundle"] = bundle.name
    out.to_csv(OUT / "text_carer_probs.csv.gz", index=False)
    print("wrote", OUT / "text_carer_probs.csv.gz", "with", bundle.name, bundle.path, "source commit", git_commit())


if __name__ == "__main__":
    main()
