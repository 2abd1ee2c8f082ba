"""The text emotion model ``text.carer``: chosen on CARER validation, scored once on CARER test, shipped.

Word TF-IDF (sublinear, L2) over the vocabulary of ``train.txt`` and multinomial logistic regression
(``avemo.models.blocks.text.TextEmotionClassifier``, ``embedder="words"``). Every setting of the grid
(word n-grams up to 1 or 2, class weights none or balanced, C) is fitted on ``train.txt`` and the one with
the best macro-F1 on ``val.txt`` is kept; only that one is scored on ``test.txt``. *love* has no canonical
class: its lines are left out of every split and counted, as in ``benchmarks/text_carer.py`` (the
TF-IDF + logistic regression of the face + voice + text system, hashed uni+bi-grams, its baseline here).
Writes the bundle ``src/avemo/weights/text.carer`` (weights, vocabulary, model card),
benchmarks/results/text/text_carer_bundle.json and the text-model section of BENCHMARKS.md.

    python benchmarks/text_carer_bundle.py [--bundle src/avemo/weights/text.carer]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from avemo.config import data_root
from avemo.datasets.carer import read_carer
from avemo.markdown import replace_section
from avemo.provenance import git_commit, machine

OUT = Path("benchmarks/results/text/text_carer_bundle.json")
BASELINE = Path("benchmarks/results/systems/text_carer.json")
BUNDLE = Path("src/avemo/weights/text.carer")
BEGIN, END = "<!-- text-carer:begin -->", "<!-- text-carer:end -->"
LABELS = ("happy", "sad", "angry", "fearful", "surprised")  # CARER's classes with a canonical name (not love)
GRID = [{"ngram_max": n, "class_weight": w, "C": c} for n in (1, 2) for w in (None, "balanced")
        for c in (1.0, 3.0, 10.0, 30.0, 100.0)]
#: sentences of the shared clips (RAVDESS statements, CREMA-D's "DFA"), scored for the card: no emotion words
SPOKEN = ("Kids are talking by the door.", "Dogs are sitting by the door.", "Don't forget a jacket.")
INPUT = ("English sentences (transcripts or social-media text); lower-cased, words joined at apostrophes, "
         "non-letters dropped (avemo.models.text.clean_text)")


def split(root: Path, name: str) -> tuple[list[str], list[str], int]:
    corpus = read_carer(root, splits=(name,))
    return [s.text for s in corpus], [s.label for s in corpus], corpus.excluded_counts().get("unmapped_label", 0)


def scores(y: list[str], probs: np.ndarray) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

    pred = [LABELS[i] for i in probs.argmax(1)]
    idx = np.array([LABELS.index(v) for v in y])
    conf = probs.max(1)
    bins = np.minimum((conf * 10).astype(int), 9)
    right = probs.argmax(1) == idx
    ece = sum(abs(right[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean() for b in range(10)
              if (bins == b).any())
    return {"n": len(y), "accuracy": float(accuracy_score(y, pred)),
            "macro_f1": float(f1_score(y, pred, labels=list(LABELS), average="macro")),
            "uar": float(recall_score(y, pred, labels=list(LABELS), average="macro")),
            "nll": float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), idx], 1e-12, None)))),
            "ece": float(ece),
            "recall": dict(zip(LABELS, recall_score(y, pred, labels=list(LABELS), average=None).tolist())),
            "confusion": confusion_matrix(y, pred, labels=list(LABELS)).tolist()}


def calibrate(model, texts: list[str], labels: list[str]) -> float:
    """Fit one temperature to the model's logits on ``texts`` (least negative log-likelihood) and fold it into
    the weights (logits / T); returns T."""
    import torch
    from scipy.optimize import minimize_scalar

    with torch.no_grad():
        z = model(texts).double().numpy()
    y = np.array([LABELS.index(v) for v in labels])

    def nll(t: float) -> float:
        s = z / t
        s = s - s.max(1, keepdims=True)
        return float(-(s - np.log(np.exp(s).sum(1, keepdims=True)))[np.arange(len(y)), y].mean())

    t = float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)
    with torch.no_grad():
        model.weight.div_(t)
        model.bias.div_(t)
    return t


def fit(setting: dict, texts: list[str], labels: list[str]):
    from avemo.models.registry import create_model

    model = create_model("text", labels=LABELS, embedder="words", ngram_max=setting["ngram_max"])
    return model.fit(texts, labels, C=setting["C"], class_weight=setting["class_weight"], max_iter=1000)


def _left(result: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in result["left_out"].items())


def card(result: dict) -> str:
    ch, test, val = result["chosen"], result["test"], result["chosen"]["val"]
    base = result.get("baseline")
    rows = "\n".join(f"| {lab} | {test['recall'][lab]:.3f} |" for lab in LABELS)
    before = ("" if base is None else "The hashed uni+bi-gram TF-IDF + logistic regression it replaces: accuracy "
              f"{base['accuracy']:.3f}, macro-F1 {base['macro_f1']:.3f} on the same sentences.")
    spoken = "\n".join(f"| {s} | " + ", ".join(f"{k} {v:.2f}" for k, v in p.items()) + " |"
                       for s, p in result["spoken"].items())
    return f"""# text.carer: emotion from English text (word TF-IDF + logistic regression)

**What it does.** Sentences in, probabilities over five emotions out: happy, sad, angry, fearful, surprised
(CARER's *joy, sadness, anger, fear, surprise*). It has no *neutral*, *calm* or *disgust*, and CARER's
*love* has no canonical class, so it was left out. Torch-free at analysis time (scikit-learn's
CountVectorizer over the shipped vocabulary, then numpy: `bundle.get_model()`).

**Language.** English only: CARER is English. A transcript in another language must not be scored
(`avemo.text.windows.text_windows` gives such windows NaN probabilities and names their language).

**Data.** CARER (Saravia et al. 2018, *CARER: Contextualized Affect Representations for Emotion
Recognition*, EMNLP): 20,000 English social-media sentences, lower-cased, labelled from emotion hashtags;
given split train 16,000 / val 2,000 / test 2,000. Lines labelled *love* left out: {_left(result)}.

**Protocol.** Fitted on `train.txt` ({ch['n_train']} sentences; vocabulary {ch['n_features']} words, every word
of the training sentences with two letters or more). Chosen on `val.txt` by macro-F1 among {len(result['grid'])}
settings (word n-grams up to 1 or 2; class weights none or balanced; C in 1, 3, 10, 30, 100):
n-grams up to {ch['setting']['ngram_max']}, class weights {ch['setting']['class_weight']}, C {ch['setting']['C']}
(val accuracy {val['accuracy']:.3f}, macro-F1 {val['macro_f1']:.3f}). Its logits are then divided by one temperature,
{result['temperature']:.3f}, fitted on `val.txt` (least negative log-likelihood; the ranking, so the accuracy,
is unchanged), so its probabilities can be fused as they are. Scored once on `test.txt`.

**Scores on CARER test** ({test['n']} sentences): accuracy **{test['accuracy']:.3f}**, macro-F1 {test['macro_f1']:.3f},
UAR {test['uar']:.3f}; negative log-likelihood {test['nll']:.3f}, expected calibration error {test['ece']:.3f}.
{before}

| class | recall |
|---|---|
{rows}

**Not validated.** Spoken language: there is no transcribed emotional speech corpus here, so how well
it reads transcripts is unknown; CARER's sentences are written posts, mostly "i feel ..." with the
emotion word in them (the labels came from such words). A sentence without emotion words still gets
one of the five emotions; the shared clips' sentences, which carry none, get:

| sentence | probabilities |
|---|---|
{spoken}

A bag of words: negation ("not happy"), irony and context are not understood. Use it with a small
weight in fusion, and mind the *neutral* class it does not have.

**Licence.** CARER is for educational and research use only; so are these weights: non-commercial (the code
is Apache-2.0).

Made by `python benchmarks/text_carer_bundle.py` (commit `{result['commit']}`).
"""


def render(result: dict) -> str:
    ch, test = result["chosen"], result["test"]
    lines = [BEGIN, "## Text emotion model `text.carer` (CARER)", "",
             "Word TF-IDF + multinomial logistic regression (`embedder=\"words\"`), fitted on CARER `train.txt`, "
             "chosen on `val.txt` by macro-F1, scored once on `test.txt`; *love* (no canonical class) left out of "
             f"every split ({_left(result)}). Command `python benchmarks/text_carer_bundle.py`, commit "
             f"`{result['commit']}` (the grid: commit `{result.get('grid_commit', result['commit'])}`), "
             f"{result['machine']['cpu_count']} CPUs (shared). The chosen model's logits are divided by a temperature "
             f"fitted on `val.txt`, {result['temperature']:.3f} (accuracy unchanged; calibration below).", "",
             "| model | chosen on val | val accuracy | val macro-F1 | test accuracy | test macro-F1 | test UAR |",
             "|---|---|---|---|---|---|---|"]
    base = result.get("baseline")
    if base is not None:
        lines.append(f"| before: hashed word 1-2-grams (2^16), TF-IDF, LR (`benchmarks/text_carer.py`) | "
                     f"C {base['C']} | {base['val_accuracy']:.3f} | {base['val_macro_f1']:.3f} | "
                     f"{base['accuracy']:.3f} | {base['macro_f1']:.3f} | |")
    s = ch["setting"]
    lines.append(f"| `text.carer`: words of the training vocabulary ({ch['n_features']}), TF-IDF, LR | n-grams "
                 f"1-{s['ngram_max']}, class weights {s['class_weight']}, C {s['C']} | {ch['val']['accuracy']:.3f} | "
                 f"{ch['val']['macro_f1']:.3f} | **{test['accuracy']:.3f}** | {test['macro_f1']:.3f} | "
                 f"{test['uar']:.3f} |")
    lines += ["", "The grid (validation only; test is scored for the chosen setting alone):", "",
              "| n-grams | class weights | C | val accuracy | val macro-F1 |", "|---|---|---|---|---|"]
    for g in result["grid"]:
        lines.append(f"| 1-{g['setting']['ngram_max']} | {g['setting']['class_weight']} | {g['setting']['C']} | "
                     f"{g['val']['accuracy']:.3f} | {g['val']['macro_f1']:.3f} |")
    lines += ["", "Test recall per class: " + ", ".join(f"{k} {v:.3f}" for k, v in test["recall"].items())
              + f"; NLL {test['nll']:.3f}, ECE {test['ece']:.3f}. Confusion (rows true, columns predicted, "
              f"order {', '.join(LABELS)}): {test['confusion']}.", "",
              "English only (CARER is English); it has no neutral, calm or disgust. The shared clips' sentences, "
              "which carry no emotion words: " + "; ".join(
                  f"\"{k}\" {max(v, key=v.get)} {max(v.values()):.2f}" for k, v in result["spoken"].items()) + ".",
              "", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, default=BUNDLE)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--markdown", default="BENCHMARKS.md", help="the file whose section is rewritten ('' for none)")
    ap.add_argument("--render", action="store_true", help="only rewrite the section and card from the stored result")
    ap.add_argument("--reuse-grid", action="store_true",
                    help="take the grid's validation scores from the stored result; fit only the chosen setting")
    args = ap.parse_args()
    if args.render:
        result = json.loads(args.out.read_text())
    else:
        result = run(args)
    if args.markdown:
        replace_section(Path(args.markdown), BEGIN, END, render(result))
    (args.bundle / "MODEL_CARD.md").write_text(card(result))
    print(f"wrote {args.out}, {args.bundle}" + (f" and the text-model section of {args.markdown}" if args.markdown
                                                else ""))


def run(args: argparse.Namespace) -> dict:
    import torch

    from avemo.models.bundles import save_bundle

    torch.set_num_threads(1)
    t0 = time.time()
    root = data_root() / "text-emotion-carer"
    (tr_x, tr_y, tr_out), (va_x, va_y, va_out), (te_x, te_y, te_out) = (split(root, s)
                                                                        for s in ("train", "val", "test"))
    grid, grid_commit = [], git_commit()
    if args.reuse_grid:  # the stored grid (validation scores of every setting), refitting only the chosen one
        stored = json.loads(args.out.read_text())
        grid, grid_commit = stored["grid"], stored.get("grid_commit", stored["commit"])
    for setting in GRID if not grid else []:
        model = fit(setting, tr_x, tr_y)
        val = scores(va_y, model.predict_proba(va_x))
        grid.append({"setting": setting, "n_features": model.n_features, "val": val})
        print(setting, {k: round(grid[-1]["val"][k], 4) for k in ("accuracy", "macro_f1")}, flush=True)
    best = max(grid, key=lambda g: g["val"]["macro_f1"])
    model = fit(best["setting"], tr_x, tr_y)
    temperature = calibrate(model, va_x, va_y)  # on val; the argmax, so accuracy, does not change
    test = scores(te_y, model.predict_proba(te_x))
    print("chosen", best["setting"], "temperature", round(temperature, 4), "test accuracy", round(test["accuracy"], 4),
          flush=True)

    folder = args.bundle
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocabulary.txt").write_text("\n".join(model.vocabulary) + "\n", encoding="utf-8")
    bundle = save_bundle(
        folder, kind="text", architecture="text", labels=LABELS,
        kwargs={"labels": list(LABELS), "embedder": "words", "n_features": model.n_features,
                "ngram_max": best["setting"]["ngram_max"]},
        preprocessing={"input": INPUT, "embedder": "words", "n_features": model.n_features,
                       "ngram_max": best["setting"]["ngram_max"], "languages": ["en"]},
        model=model, extra_files={"vocabulary": "vocabulary.txt"},
        meta={"data": "CARER train.txt (love left out)", "selection": "macro-F1 on CARER val.txt",
              "setting": best["setting"], "temperature": round(temperature, 4),
              "test_accuracy": round(test["accuracy"], 4),
              "test_macro_f1": round(test["macro_f1"], 4), "languages": ["en"],
              "licence": "CARER: educational and research use only"})
    runtime = bundle.get_model()  # the shipped, torch-free path must give the same test result
    logits = runtime(te_x)
    shipped = scores(te_y, np.exp(logits - logits.max(1, keepdims=True)) /
                     np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True))
    if abs(shipped["accuracy"] - test["accuracy"]) > 1e-9:
        raise SystemExit(f"the shipped bundle scores {shipped['accuracy']} on test, the fitted model "
                         f"{test['accuracy']}")
    with torch.no_grad():
        diff = float(np.abs(bundle.get_model("torch")(te_x[:200]).numpy() - logits[:200]).max())
    z = runtime(list(SPOKEN))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    spoken = {s: {lab: round(float(v), 3) for lab, v in zip(LABELS, row)} for s, row in zip(SPOKEN, p)}
    baseline = None
    if BASELINE.is_file():
        b = json.loads(BASELINE.read_text())["chosen"]
        baseline = {"C": b["C"], "accuracy": b["test"]["accuracy"], "macro_f1": b["test"]["macro_f1"],
                    "val_accuracy": b["val"]["accuracy"], "val_macro_f1": b["val"]["macro_f1"]}
    result = {"command": "python benchmarks/text_carer_bundle.py", "commit": git_commit(), "machine": machine(),
              "seconds": time.time() - t0, "left_out": {"train": tr_out, "val": va_out, "test": te_out},
              "chosen": {**best, "n_train": len(tr_x)}, "temperature": temperature, "test": test, "grid": grid,
              "grid_commit": grid_commit, "baseline": baseline,
              "spoken": spoken, "torch_vs_runtime_max_logit_difference": diff,
              "bundle": {"path": str(folder), "files": {f.name: f.stat().st_size for f in sorted(folder.iterdir())}}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
