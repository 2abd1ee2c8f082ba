"""Ablation for issue #11: does the geometry in the face model's blendshape member help?

The blendshape member of ``face.fervideo`` classifies 145 features per face: MediaPipe's 52 blendshapes, head
pose (3) and 45 landmark points in a face frame (90). This script trains the shipped candidate
(``CANDIDATES["mlp_256_a1e-3_balanced"]``, chosen on PublicTest) on three feature sets, cut by column name from
:func:`avemo.faces.expression_features.feature_names`:

* ``blendshapes`` — the 52 blendshapes only;
* ``blendshapes+pose`` — plus yaw, pitch, roll;
* ``all`` — plus the landmark geometry (what ships).

Each is fitted as :func:`avemo.training.blendshape_fer.train_blendshape_classifier` fits it: FER-2013 Training
faces MediaPipe finds (clean rendering) plus their mirror images, standardised by the training mean and std
(missing values → the mean), :func:`~avemo.training.blendshape_fer.fit_candidate` with seeds 0, 1 and 2. Each
fit is scored on the faces MediaPipe finds in PublicTest (dev) and PrivateTest (test): accuracy, UAR (mean
per-class recall), macro-F1. The conclusion is drawn from the dev figures only.

Writes ``benchmarks/results/face_crossdomain/blendshape_ablation.json`` and its section of BENCHMARKS.md
(``--render``: the section again from the stored JSON).

Run (MediaPipe extraction is cached under ``$AVEMO_CACHE/fer2013_faces``)::

    AVEMO_CACHE=/tmp/avemo-cache-ablation python benchmarks/blendshape_ablation.py [--limit N] [--seeds 0 1 2]
    python benchmarks/blendshape_ablation.py --render

``--limit N`` uses an evenly spaced N of the Training faces (``fer_faces.extract(limit=N)``); the test splits
are always whole.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from avemo.provenance import git_commit, machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "face_crossdomain"
CANDIDATE = "mlp_256_a1e-3_balanced"
BEGIN, END = "<!-- blendshape-ablation:begin -->", "<!-- blendshape-ablation:end -->"
SPLITS = {"train": "train", "dev": "public_test", "test": "private_test"}
SET_ORDER = ("blendshapes", "blendshapes+pose", "all")
SET_LABELS = {"blendshapes": "(a) blendshapes", "blendshapes+pose": "(b) blendshapes + pose",
              "all": "(c) blendshapes + pose + geometry (ships)"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--limit", type=int, default=None, help="an evenly spaced subset of N Training faces")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md", help="file whose section is written")
    p.add_argument("--render", action="store_true", help="only (re)write the section from the stored JSON")
    return p.parse_args(argv)


def feature_groups() -> dict[str, np.ndarray]:
    """Column indices of each feature set, split by the names of :func:`feature_names`."""
    from avemo.faces.expression_features import feature_names
    from avemo.faces.types import BLENDSHAPE_NAMES

    names = feature_names()
    blend = [i for i, n in enumerate(names) if n in set(BLENDSHAPE_NAMES)]
    pose = [i for i, n in enumerate(names) if n.startswith("pose_")]
    geo = [i for i, n in enumerate(names) if n.startswith("lm") and n.endswith(("_x", "_y"))]
    if sorted(blend + pose + geo) != list(range(len(names))) or len(blend) != len(BLENDSHAPE_NAMES):
        raise RuntimeError("feature names do not split into blendshapes, pose and geometry")
    return {"blendshapes": np.array(blend), "pose": np.array(pose), "geometry": np.array(geo)}


def feature_sets(groups: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The three nested feature sets of the ablation (column indices)."""
    return {"blendshapes": groups["blendshapes"],
            "blendshapes+pose": np.concatenate([groups["blendshapes"], groups["pose"]]),
            "all": np.concatenate([groups["blendshapes"], groups["pose"], groups["geometry"]])}


def check_mirror_within_sets(sets: dict[str, np.ndarray]) -> None:
    """Mirroring must map each set's columns onto themselves, so mirroring all 145 then cutting is exact."""
    from avemo.faces.expression_features import N_FEATURES, mirror_features

    perm = mirror_features(np.arange(N_FEATURES, dtype=np.float32)[None]).astype(int)[0]
    for name, cols in sets.items():
        if not set(np.abs(perm[cols]).tolist()) <= set(cols.tolist()):
            raise RuntimeError(f"mirroring moves columns of {name!r} outside it")


def cached(split: str, limit: int | None) -> bool:
    """Whether ``fer_faces.extract(split, "clean", limit=limit)`` is already cached (so this run did not time it)."""
    from avemo.config import cache_root

    suffix = "" if limit is None else f"_{limit}"
    return (cache_root() / "fer2013_faces" / f"{split}_clean{suffix}.npz").is_file()


def load_split(split: str, limit: int | None) -> dict[str, Any]:
    """Features and labels of the faces MediaPipe found in one split (clean rendering), plus counts."""
    from avemo.training.blendshape_fer import features_of
    from avemo.training.fer_faces import extract

    d = extract(split, "clean", limit=limit)
    found = d["found"]
    return {"x": features_of(d)[found], "y": d["y"][found].astype(np.int64),
            "faces": int(len(found)), "found": int(found.sum())}


def training_matrix(x: np.ndarray, y: np.ndarray, cols: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """As ``train_blendshape_classifier``: faces + mirror images, standardised; ``(xs, y, mean, std)``."""
    from avemo.faces.expression_features import mirror_features

    xm = np.concatenate([x, mirror_features(x)])[:, cols]
    ym = np.concatenate([y, y])
    mean = np.nanmean(xm, axis=0).astype(np.float32)
    std = (np.nanstd(xm, axis=0) + 1e-6).astype(np.float32)
    return np.nan_to_num((xm - mean) / std), ym, mean, std


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)


def fit(cols: np.ndarray, train: dict[str, Any], seed: int) -> Any:
    """The shipped candidate fitted on one feature set with one seed, as a ``BlendshapeClassifier``."""
    from sklearn.exceptions import ConvergenceWarning

    from avemo.faces.expression_features import feature_names
    from avemo.faces.expression_model import BlendshapeClassifier
    from avemo.labels import BASIC7
    from avemo.training.blendshape_fer import CANDIDATES, fit_candidate

    seed_everything(seed)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # 60 epochs as shipped; sklearn warns
    xs, y, mean, std = training_matrix(train["x"], train["y"], cols)
    layers = fit_candidate(CANDIDATES[CANDIDATE], xs, y, seed=seed)
    names = tuple(feature_names()[i] for i in cols)
    return BlendshapeClassifier(labels=tuple(BASIC7), feature_names=names, mean=mean, std=std, layers=layers)


def score(clf: Any, cols: np.ndarray, split: dict[str, Any]) -> dict[str, float]:
    """Accuracy, UAR (mean per-class recall over the classes present), macro-F1 and n."""
    from sklearn.metrics import f1_score

    y = split["y"]
    pred = clf.predict_proba(split["x"][:, cols]).argmax(1)
    uar = float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))
    f1 = float(f1_score(y, pred, labels=np.unique(y), average="macro", zero_division=0))
    return {"accuracy": float((pred == y).mean()), "uar": uar, "macro_f1": f1, "n": int(len(y))}


def summarise(per_seed: dict[str, dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation (population, ddof 0) over seeds of each split's measures."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for split in ("dev", "test"):
        out[split] = {}
        for m in ("accuracy", "uar", "macro_f1"):
            v = np.array([s[split][m] for s in per_seed.values()])
            out[split][m] = {"mean": float(v.mean()), "std": float(v.std())}
    return out


def conclusion(summary: dict[str, dict[str, Any]]) -> str:
    """One sentence, from the dev (PublicTest) figures only: does each added group beat the seed spread?"""
    def dev_score(name: str) -> tuple[float, float]:
        d = summary[name]["dev"]
        return (d["accuracy"]["mean"] + d["uar"]["mean"]) / 2, max(d["accuracy"]["std"], d["uar"]["std"])

    (a, sa), (b, sb), (c, sc) = (dev_score(n) for n in SET_ORDER)
    spread = 2 * max(sa, sb, sc, 1e-4)

    def verdict(gain: float) -> str:
        if gain > spread:
            return f"helps (+{100 * gain:.1f} points)"
        if gain < -spread:
            return f"hurts ({100 * gain:.1f} points)"
        return f"makes no difference beyond the seed spread ({100 * gain:+.1f} points)"

    return (f"On PublicTest (dev; mean of accuracy and UAR, over the seeds), pose over blendshapes alone "
            f"{verdict(b - a)}, and the landmark geometry over blendshapes + pose {verdict(c - b)}; a difference "
            f"within 2× the largest seed std ({100 * spread:.1f} points) would count as none.")


def fmt(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def markdown(report: dict[str, Any]) -> str:
    """The BENCHMARKS.md fragment: command, protocol, table, conclusion."""
    n = report["faces"]
    lines = [
        BEGIN, "### Blendshape member: does the geometry help? (issue #11)", "",
        f"`{report['command']}` (commit `{report['commit']}`, {report['date']}, {report['minutes']:.1f} min)", "",
        f"The shipped candidate `{CANDIDATE}` was fitted, as the shipped member is, on the FER-2013 Training faces "
        f"MediaPipe finds (clean rendering, {n['train']['found']:,} of {n['train']['faces']:,}"
        f"{'' if report['train_limit'] is None else ', an evenly spaced subset'}) plus their mirror images, "
        f"standardised, with seeds {', '.join(map(str, report['seeds']))}, once per feature set cut by column name. "
        f"Each fit is scored on the faces MediaPipe finds in PublicTest (dev, {n['dev']['found']:,} of "
        f"{n['dev']['faces']:,}) and PrivateTest (test, {n['test']['found']:,} of {n['test']['faces']:,}); "
        "figures are mean ± std (%) over the seeds.", "",
        "| feature set | features | PublicTest acc / UAR | PrivateTest acc / UAR | macro-F1 test |",
        "|---|---:|---|---|---|",
    ]
    for name in SET_ORDER:
        s = report["sets"][name]
        m = s["summary"]
        lines.append(f"| {SET_LABELS[name]} | {s['features']} | {fmt(m['dev']['accuracy'])} / {fmt(m['dev']['uar'])} "
                     f"| {fmt(m['test']['accuracy'])} / {fmt(m['test']['uar'])} | {fmt(m['test']['macro_f1'])} |")
    lines += ["", report["conclusion"], "", END]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Extract (cached), fit every feature set with every seed, score; the report."""
    from avemo.config import cache_root

    t0 = time.time()
    groups = feature_groups()
    print("feature groups: " + ", ".join(f"{k} {len(v)}" for k, v in groups.items()), flush=True)
    sets = feature_sets(groups)
    check_mirror_within_sets(sets)
    was_cached = {k: cached(s, args.limit if k == "train" else None) for k, s in SPLITS.items()}
    data = {k: load_split(s, args.limit if k == "train" else None) for k, s in SPLITS.items()}
    for k, d in data.items():
        print(f"{k} ({SPLITS[k]}): MediaPipe found {d['found']} of {d['faces']} faces", flush=True)
    report: dict[str, Any] = {
        "command": "AVEMO_CACHE=" + str(cache_root()) + " python " + " ".join(["benchmarks/blendshape_ablation.py",
                                                                               *sys.argv[1:]]),
        "commit": git_commit(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"mediapipe": metadata.version("mediapipe"),
                                "sklearn": metadata.version("scikit-learn")},
        "candidate": CANDIDATE, "seeds": args.seeds, "train_limit": args.limit,
        "faces": {k: {"faces": d["faces"], "found": d["found"]} for k, d in data.items()},
        "extraction_cached_before_run": was_cached, "cache": str(cache_root() / "fer2013_faces"),
        "groups": {k: len(v) for k, v in groups.items()},
        "protocol": "fit on FER-2013 Training faces MediaPipe finds (clean) + mirror images, standardised as "
                    "train_blendshape_classifier does; scored on faces MediaPipe finds in PublicTest (dev) and "
                    "PrivateTest (test); conclusion from dev only",
        "sets": {},
    }
    for name in SET_ORDER:
        cols = sets[name]
        per_seed = {}
        for seed in args.seeds:
            t = time.time()
            clf = fit(cols, data["train"], seed)
            per_seed[str(seed)] = {"dev": score(clf, cols, data["dev"]), "test": score(clf, cols, data["test"]),
                                   "fit_s": time.time() - t}
            r = per_seed[str(seed)]
            print(f"{name} seed {seed}: dev acc {r['dev']['accuracy']:.4f} UAR {r['dev']['uar']:.4f}; "
                  f"test acc {r['test']['accuracy']:.4f} UAR {r['test']['uar']:.4f} F1 {r['test']['macro_f1']:.4f} "
                  f"({r['fit_s']:.0f}s)", flush=True)
        report["sets"][name] = {"features": len(cols), "per_seed": per_seed, "summary": summarise(per_seed)}
    report["conclusion"] = conclusion({k: v["summary"] for k, v in report["sets"].items()})
    report["minutes"] = (time.time() - t0) / 60
    return report


def main(argv: list[str] | None = None) -> None:
    from avemo.markdown import replace_section

    args = parse_args(argv)
    path = args.out / "blendshape_ablation.json"
    if args.render:
        report = json.loads(path.read_text())
    else:
        report = run(args)
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))
    replace_section(args.markdown, BEGIN, END, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
