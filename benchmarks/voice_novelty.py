"""How far each held-out voice clip lies from its voice model's training data: evidence for the fusion (issue #12).

For every stored held-out voice prediction of the fusion benchmark (the outer leave-one-corpus-out rows,
``loco_probs_linear_L2-4_aug.csv.gz``, and the nested rows, ``voice_nested.csv.gz``), the clip's pooled Whisper
vector (layers 2-4, mean + std, as the shipped head sees it) is standardised with the statistics of *that
prediction's* training clips, projected on their first 64 principal directions, whitened, and its length taken:

    novelty = log(|whitened projection| / median of the same over the training clips)

so about 0 for a clip like the training data and larger the further off it lies. Only what the analyzer could
compute per window from the shipped head's own training data is used (no label, no test corpus statistic).

    AVEMO_CACHE=<cache with voice_multi/pooled_clean_all_4369.npy> python benchmarks/voice_novelty.py
    -> benchmarks/results/fusion_crossdomain/voice_novelty.csv.gz (columns outer, part, path, novelty)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fusion_voice_nested import nested_jobs, tables  # noqa: E402

from avemo.config import data_root  # noqa: E402
from avemo.datasets.speech import SPEECH_CORPORA, read_speech_corpora  # noqa: E402

OUT = Path("benchmarks/results/fusion_crossdomain")
COMPONENTS = 64


def novelty(x_tr: np.ndarray, x_te: np.ndarray) -> np.ndarray:
    """Log whitened-PCA distance of ``x_te`` from ``x_tr``'s data, relative to the training clips' median."""
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-3
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    proj = vt[:COMPONENTS].T / (s[:COMPONENTS] / np.sqrt(len(a)))
    d_tr = np.linalg.norm(a @ proj, axis=1)
    return np.log(np.linalg.norm(b @ proj, axis=1) / np.median(d_tr))


def main() -> None:
    samples = read_speech_corpora()
    root = data_root()
    path_of = np.array([str(s.path.relative_to(root)) for s in samples])
    corpus = np.array([s.corpus for s in samples], dtype=object)
    x, _ = tables(len(samples))  # the shipped head's input: layers 2-4, clean
    # (outer, part, train index, test index), as the stored predictions were made: the outer LOCO rows, then the nested
    jobs = [("loco_test", "outer", np.flatnonzero(corpus != c), np.flatnonzero(corpus == c)) for c in SPEECH_CORPORA]
    jobs += nested_jobs(samples, corpus)[0]
    parts, t0 = [], time.time()
    for n, (outer, part, tr, te) in enumerate(jobs):
        parts.append(pd.DataFrame({"outer": outer, "part": part, "path": path_of[te],
                                   "novelty": np.round(novelty(x[tr], x[te]), 4)}))
        print(f"[{n + 1}/{len(jobs)}] {outer} {part} {corpus[te[0]]}: median novelty "
              f"{np.median(parts[-1].novelty):+.3f} ({time.time() - t0:.0f} s)", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    pd.concat(parts, ignore_index=True).to_csv(OUT / "voice_novelty.csv.gz", index=False)
    print(f"wrote {OUT / 'voice_novelty.csv.gz'}")


def summary() -> None:
    """Per held-out corpus: median novelty, and how well it (negated) and the voice's own confidence separate right
    from wrong answers (AUROC; 0.5 is chance), on the outer LOCO predictions."""
    from sklearn.metrics import roc_auc_score

    from avemo.labels import EMOTIONS

    probs = pd.read_csv(Path("benchmarks/results/voice_multi/loco_probs_linear_L2-4_aug.csv.gz"))
    nov = pd.read_csv(OUT / "voice_novelty.csv.gz")
    d = probs.merge(nov[nov.outer == "loco_test"][["path", "novelty"]], on="path", validate="one_to_one")
    own = {c: np.array([e in set(g.label) for e in EMOTIONS]) for c, g in d.groupby("corpus")}
    p = d[list(EMOTIONS)].to_numpy() * np.stack([own[c] for c in d.corpus])
    right = p.argmax(1) == d.label.map(list(EMOTIONS).index).to_numpy()
    conf = p.max(1) / p.sum(1)
    for c in ("all", *SPEECH_CORPORA):
        s = np.ones(len(d), bool) if c == "all" else (d.corpus == c).to_numpy()
        print(f"{c:11s} median novelty {np.median(d.novelty[s]):+.3f}  accuracy {right[s].mean():.3f}  AUROC right vs "
              f"wrong: -novelty {roc_auc_score(right[s], -d.novelty[s]):.3f}, confidence "
              f"{roc_auc_score(right[s], conf[s]):.3f}")


if __name__ == "__main__":
    if sys.argv[1:] == ["summary"]:
        summary()
    else:
        main()
