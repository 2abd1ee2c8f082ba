"""Nested leave-one-corpus-out for the voice head: how good the recipe *choice* is on a corpus nobody chose on.

The shipped head (``voice.multi6``, ``linear_L2-4_aug``) was chosen on the LOCO test corpora themselves, so its
LOCO figure (52.8 mean UAR) is optimistic. Here each candidate recipe is scored twice:

* **outer**: trained on five corpora, tested on the sixth (the usual LOCO row; a table of these is what a
  choice made on the test corpora sees);
* **inner**: for each outer corpus, LOCO over the five training corpora only (train on four, test on the
  fifth); the recipe with the best inner mean UAR is the one the nested protocol picks for that outer corpus.

The nested row (each outer corpus scored with the recipe its own inner LOCO picked) is an honest estimate of
"choose a recipe, then meet an unseen corpus". UAR is over the tested corpus's own classes (as in
``benchmarks/voice_crossdomain.py``); the 8-way UAR (argmax over all eight classes, what a user gets) is also
reported for the outer rows. Needs the pooled Whisper tables of ``benchmarks/voice_crossdomain.py`` in
``$AVEMO_CACHE/voice_multi`` (``pooled_clean_all_4369.npy``, ``pooled_aug_all_4369.npy``).

    python benchmarks/voice_nested_select.py run [--jobs 2]     # -> benchmarks/results/voice_multi/nested.json
    python benchmarks/voice_nested_select.py --render BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voice_crossdomain import LAYERS, restrict, scores  # noqa: E402

from avemo.config import cache_root  # noqa: E402
from avemo.datasets.speech import SPEECH_CORPORA, label_sets, read_speech_corpora  # noqa: E402
from avemo.labels import EMOTIONS  # noqa: E402
from avemo.training import speech_heads as H  # noqa: E402

OUT = Path("benchmarks/results/voice_multi/nested.json")
BEGIN, END = "<!-- voice-nested:begin -->", "<!-- voice-nested:end -->"


@dataclass(frozen=True)
class Candidate:
    """One head recipe on pooled (mean+std) Whisper-base frames; every candidate stops at layer 4 (the
    encoder cost the analyzer pays today)."""

    name: str
    layers: tuple[int, ...] = (2, 3, 4)
    head: str = "linear"  # "linear" (L-BFGS logistic regression), "mlp" (one hidden layer), "layer_ens"
    l2: float = 0.1
    aug: bool = True
    hidden: int = 256
    epochs: int = 30
    seed: int = 0


CANDIDATES = (
    Candidate("linear_L2-4_l2=0.1 (shipped recipe)"),
    Candidate("linear_L2-4_l2=1", l2=1.0),
    Candidate("linear_L2-4_l2=0.01", l2=0.01),
    Candidate("linear_L0-4_l2=0.1", layers=(0, 1, 2, 3, 4)),
    Candidate("linear_L3-4_l2=0.1", layers=(3, 4)),
    Candidate("layer_ens_L2+L3+L4_l2=0.1", head="layer_ens"),
    Candidate("mlp256_L2-4", head="mlp", l2=1e-2),
)


class Tables:
    """The clean and augmented pooled vectors, labels, corpora and label sets of the six corpora."""

    def __init__(self) -> None:
        samples = read_speech_corpora()
        self.sets = label_sets(samples)
        self.y = np.array([EMOTIONS.index(s.label) for s in samples])
        self.corpus = np.array([s.corpus for s in samples], dtype=object)
        folder = cache_root() / "voice_multi"
        self.tables = {}
        for condition in ("clean", "aug"):
            path = folder / f"pooled_{condition}_all_{len(samples)}.npy"
            if not path.is_file():
                sys.exit(f"{path}: missing; run benchmarks/voice_features.py (clean and aug) and "
                         "benchmarks/voice_crossdomain.py run first")
            self.tables[condition] = np.load(path, mmap_mode="r")

    def x(self, condition: str, layers: tuple[int, ...]) -> np.ndarray:
        t = self.tables[condition]
        return np.concatenate([np.asarray(t[:, LAYERS.index(k)], np.float32) for k in layers], axis=1)


def _train_mlp(x: np.ndarray, y: np.ndarray, corpus: np.ndarray, sets: dict, c: Candidate) -> nn.Module:
    """One hidden layer (GELU, dropout 0.5), AdamW, the corpus-masked balanced loss, full epochs in batches."""
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    model = nn.Sequential(nn.Dropout(0.2), nn.Linear(x.shape[1], c.hidden), nn.GELU(), nn.Dropout(0.5),
                          nn.Linear(c.hidden, len(EMOTIONS)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=c.l2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    mt = torch.from_numpy(H._mask_rows(corpus, sets))
    wt = torch.from_numpy(H.balanced_weights(corpus, y))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=c.epochs * (len(y) // 128 + 1))
    model.train()
    for _ in range(c.epochs):
        for idx in np.array_split(rng.permutation(len(y)), len(y) // 128 + 1):
            i = torch.from_numpy(idx)
            loss = H.masked_cross_entropy(model(xt[i]), yt[i], mt[i], wt[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def fit_predict(c: Candidate, data: Tables, tr: np.ndarray, te: np.ndarray) -> np.ndarray:
    """Candidate ``c`` trained on ``tr`` (+ augmented copies), log-probabilities over the 8 classes for ``te``."""
    groups = [(k,) for k in c.layers] if c.head == "layer_ens" else [c.layers]
    out = np.zeros((len(te), len(EMOTIONS)))
    for layers in groups:
        xc = data.x("clean", layers)
        x_tr, y_tr, c_tr = xc[tr], data.y[tr], data.corpus[tr]
        if c.aug:
            xa = data.x("aug", layers)
            has = tr[~np.isnan(xa[tr]).any(1)]
            x_tr = np.concatenate([x_tr, xa[has]])
            y_tr, c_tr = np.concatenate([y_tr, data.y[has]]), np.concatenate([c_tr, data.corpus[has]])
        mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-3
        x_tr, x_te = ((x_tr - mu) / sd).astype(np.float32), ((xc[te] - mu) / sd).astype(np.float32)
        if c.head == "mlp":
            model = _train_mlp(x_tr, y_tr, c_tr, data.sets, c)
            with torch.inference_mode():
                z = model(torch.from_numpy(x_te)).numpy()
        else:
            z = H.linear_logits(H.train_linear(x_tr, y_tr, c_tr, data.sets,
                                               H.HeadConfig(weight_decay=c.l2, seed=c.seed)), x_te)
        z = z - z.max(1, keepdims=True)
        out += z - np.log(np.exp(z).sum(1, keepdims=True))
    return out / len(groups)


def uar(logp: np.ndarray, y: np.ndarray, corpus: str, sets: dict | None) -> float:
    """Unweighted average recall; argmax over ``corpus``'s own classes (``sets``) or, with None, all eight."""
    if sets is None:
        return scores(np.exp(logp), y, EMOTIONS)["uar"]
    return scores(restrict(logp, np.array([corpus] * len(y)), sets, logits=True), y, sets[corpus])["uar"]


def outer_and_inner(fit: Callable[[np.ndarray, np.ndarray], np.ndarray], data: Tables, outer: str,
                    name: str) -> dict:
    """``fit(train_idx, test_idx) -> log-probabilities`` scored on one held-out corpus (UAR over its classes and
    8-way) and by the inner LOCO over the other five; printed as one line under ``name``."""
    t0 = time.time()
    tr, te = np.flatnonzero(data.corpus != outer), np.flatnonzero(data.corpus == outer)
    lp = fit(tr, te)
    row = {"outer": outer, "uar": uar(lp, data.y[te], outer, data.sets),
           "uar_8way": uar(lp, data.y[te], outer, None), "inner": {}}
    for inner in SPEECH_CORPORA:
        if inner != outer:
            tr_i = np.flatnonzero((data.corpus != outer) & (data.corpus != inner))
            te_i = np.flatnonzero(data.corpus == inner)
            row["inner"][inner] = uar(fit(tr_i, te_i), data.y[te_i], inner, data.sets)
    row["inner_mean"] = float(np.mean(list(row["inner"].values())))
    row["seconds"] = time.time() - t0
    print(f"{name} | {outer}: outer {row['uar']:.3f} (8-way {row['uar_8way']:.3f}) inner mean "
          f"{row['inner_mean']:.3f} ({row['seconds']:.0f} s)", flush=True)
    return row


def one_outer(args: tuple[Candidate, str]) -> dict:
    """Outer and inner LOCO scores of one candidate for one held-out corpus."""
    torch.set_num_threads(1)
    c, outer = args
    data = Tables()
    return {"candidate": c.name, **outer_and_inner(lambda tr, te: fit_predict(c, data, tr, te), data, outer, c.name)}


def run(jobs: int) -> None:
    from avemo.provenance import git_commit, machine

    done = json.loads(OUT.read_text()) if OUT.is_file() else {"rows": []}
    have = {(r["candidate"], r["outer"]) for r in done["rows"]}
    todo = [(c, o) for c in CANDIDATES for o in SPEECH_CORPORA if (c.name, o) not in have]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for row in pool.map(one_outer, todo):
            done["rows"].append(row)
            done.update({"candidates": [asdict(c) for c in CANDIDATES], "commit": git_commit(),
                         "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())})
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(done, indent=1))  # after every row: an interrupted run resumes
    print(render(done))


def summary(res: dict) -> dict:
    """Mean UARs of the nested choice and of the shipped recipe (``CANDIDATES[0]``), for the model card."""
    names = [c["name"] for c in res["candidates"]]
    cell = {(r["candidate"], r["outer"]): r for r in res["rows"]}
    corpora = [c for c in SPEECH_CORPORA if all((n, c) in cell for n in names)]
    nested = [cell[(max(names, key=lambda n: cell[(n, c)]["inner_mean"]), c)] for c in corpora]
    shipped = [cell[(names[0], c)] for c in corpora]
    return {"corpora": corpora, "candidates": len(names), "nested_uar": float(np.mean([r["uar"] for r in nested])),
            "shipped_uar": float(np.mean([r["uar"] for r in shipped])),
            "shipped_uar_8way": float(np.mean([r["uar_8way"] for r in shipped]))}


def loco_row(label: str, cells: list[dict], inner: bool = False) -> str:
    """A table row: each corpus's outer UAR (inner mean in brackets), the mean UAR and mean 8-way UAR, and with
    ``inner`` the mean of the inner means (%)."""
    def mean(key: str) -> str:
        return f"{100 * np.mean([r[key] for r in cells]):.1f}"

    return (f"| {label} | " + " | ".join(f"{100 * r['uar']:.1f} ({100 * r['inner_mean']:.1f})" for r in cells)
            + f" | {mean('uar')} | {mean('uar_8way')} |" + (f" {mean('inner_mean')} |" if inner else ""))


def render(res: dict) -> str:
    rows = res["rows"]
    names = [c["name"] for c in res["candidates"]]
    cell = {(r["candidate"], r["outer"]): r for r in rows}
    corpora = [c for c in SPEECH_CORPORA if all((n, c) in cell for n in names)]
    lines = [BEGIN, "### Nested choice of the voice head (issue #10)", "",
             f"`python benchmarks/voice_nested_select.py run` then `--render` (commit `{res['commit']}`, "
             f"{res['date']}; `benchmarks/results/voice_multi/nested.json`). Each cell: UAR (%) on the corpus "
             "left out, trained on the other five (+ their augmented copies, one draw of every clip), over that "
             "corpus's own classes; in brackets the inner mean UAR (LOCO over the five training corpora only), "
             "which is all the nested protocol may look at. Every candidate uses Whisper base layers <= 4 "
             "(today's encoder cost).", "",
             "| candidate | " + " | ".join(corpora) + " | mean UAR | mean 8-way UAR |",
             "|---|" + "---|" * (len(corpora) + 2)]
    lines += [loco_row(f"`{n}`", [cell[(n, c)] for c in corpora]) for n in names]
    picks = {c: max(names, key=lambda n: cell[(n, c)]["inner_mean"]) for c in corpora}
    nested = [cell[(picks[c], c)] for c in corpora]
    lines.append("| **nested: the candidate each corpus's inner LOCO picks** | "
                 + " | ".join(f"**{100 * r['uar']:.1f}**" for r in nested)
                 + f" | **{100 * np.mean([r['uar'] for r in nested]):.1f}** | "
                 f"{100 * np.mean([r['uar_8way'] for r in nested]):.1f} |")
    best = max(names, key=lambda n: np.mean([cell[(n, c)]["uar"] for c in corpora]))
    lines += ["", "Picked per corpus: " + "; ".join(f"{c}: `{picks[c]}`" for c in corpora) + ".", "",
              f"Read: the nested row ({100 * np.mean([r['uar'] for r in nested]):.1f}) is the honest estimate of "
              "choosing among these heads and then meeting a corpus nobody chose on; the best row chosen on the "
              f"test corpora (`{best}`, {100 * np.mean([cell[(best, c)]['uar'] for c in corpora]):.1f}) is within "
              "a point of it and of the shipped recipe. No head on Whisper base layers <= 4 moves the mean by more "
              "than a point: the target (60) needs a better encoder, not a better head. Users get the 8-way "
              "answer, whose UAR is some 15 points lower, since a corpus's clips are also called by classes it "
              "does not have (*calm*, *surprised* ...).", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", default="run", choices=["run"])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--render", type=Path, help="write the section into this markdown file and stop")
    args = ap.parse_args()
    if args.render:
        from avemo.markdown import replace_section

        replace_section(args.render, BEGIN, END, render(json.loads(OUT.read_text())))
        return
    run(args.jobs)


if __name__ == "__main__":
    main()
