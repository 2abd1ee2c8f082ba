"""Scoring the models on labelled recordings, as a user would meet them: each file analysed end to end (the
analyzer of ``avemo analyze``), its clip-level answer per modality (the mean of its windows' probabilities, the
summary's ``<modality>_distribution``) set against its label.

    from avemo.datasets import read_corpus
    report = score(read_corpus("cremad"), Analyzer(), Path("scores/cremad"))
    print(report.metrics["fused"]["within"]["uar"])

Each answer is read two ways: ``within`` the data's own classes (the argmax over the classes its labels use,
the protocol of the corpus tables in BENCHMARKS.md: a corpus without *calm* is never answered *calm*) and
``open`` (the argmax over all eight, what ``avemo analyze`` says). A clip where a modality has no answer (no
face found, no speech) counts as wrong for that modality, and ``answered`` says how often that happened; a file
that fails is reported with its reason and left out of the scores (``failed``). Every clip's row is appended to
``predictions.csv`` as it is scored, so an interrupted run loses nothing and the same call goes on from there.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from avemo.datasets.base import Sample
from avemo.errors import AvemoError
from avemo.labels import EMOTIONS

MODES = ("within", "open")
NO_ANSWER = "no answer"
BASE_COLUMNS = ["uid", "path", "corpus", "speaker", "label", "status", "error", "seconds"]
#: corpus names as bundle cards and readers spell them
KNOWN_CORPORA = ("ravdess", "cremad", "crema-d", "savee", "emovo", "casia", "urdu", "bangla-ext", "banglaser",
                 "fer2013", "fer-2013", "enterface", "baum1s", "mead", "meld", "carer")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower()).replace("banglaser", "banglaext")


def select(samples: Sequence[Sample], limit: int | None, seed: int = 0) -> list[Sample]:
    """At most ``limit`` samples, the classes as even as the data allows (a seeded draw, the same every time)."""
    items = list(samples)
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise AvemoError(f"score: limit must be at least 1, got {limit}")
    order = np.random.default_rng(seed).permutation(len(items))
    rank: dict[str, int] = {}
    keyed = []
    for i in order:
        label = items[i].label
        keyed.append((rank.get(label, 0), len(keyed), items[i]))
        rank[label] = rank.get(label, 0) + 1
    return [s for _, _, s in sorted(keyed, key=lambda k: k[:2])[:limit]]


def read_labelled(data: str | Path, corpus: str | None = None, label_names: str | None = None) -> Any:
    """The labelled samples ``data`` names, as a :class:`~avemo.datasets.Corpus`: a manifest CSV (columns
    ``path,label``, the speaker optional; ``label_names``: its labels are that corpus's own names), a corpus folder
    in its own layout (``corpus`` names its reader; guessed from the folder's name where it can be), or a corpus
    name found under ``$AVEMO_DATA``."""
    from avemo.datasets import DEFAULT_DIRS, READERS, read_corpus, read_manifest

    known = [k for k in READERS if k not in ("manifest", "carer")]
    path = Path(data).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise AvemoError(f"{path}: a manifest is a .csv file (columns path,label); for one media file use "
                             "avemo analyze")
        return read_manifest(path, corpus=corpus or "manifest", label_corpus=label_names, check_files=False,
                             require_speaker=False)
    if label_names:
        raise AvemoError("label names apply to a manifest CSV (a corpus folder's reader knows its labels)")
    if path.is_dir():
        if corpus is None:
            guess = [k for k in known if path.name.lower() in (k, DEFAULT_DIRS.get(k, k).lower())]
            if not guess:
                raise AvemoError(f"{path}: say how its files are labelled with --corpus ({', '.join(known)}), or "
                                 "give a manifest CSV (columns path,label)")
            corpus = guess[0]
        return read_corpus(corpus, path)
    if corpus is None and str(data).lower() in [*known, "crema-d", "fer"]:
        return read_corpus(str(data))
    raise AvemoError(f"{data}: not a manifest CSV, a folder or a corpus name ({', '.join(known)})")


def default_out(data: str | Path, corpus: str | None = None) -> Path:
    """Where scores go unless told: ``avemo-score/<corpus, or the manifest's or folder's name>``."""
    path = Path(data)
    return Path("avemo-score") / (corpus or (path.stem if path.is_file() else path.name))


def labelled_samples(corpus: Any, *, kind: str | None = None, split: str | None = None, limit: int | None = None,
                     seed: int = 0) -> list[Sample]:
    """The media samples of a corpus to score: of one ``kind`` (audio, video, av, image) and ``split`` if given,
    at most ``limit`` of them (:func:`select`); rows of a table (text, FER-2013's CSV) are refused."""
    from avemo.datasets.base import TEXT_EXTS

    samples = [s for s in corpus if (kind is None or s.modality == kind) and (split is None or s.split == split)]
    tables = [s for s in samples if s.modality == "text" or s.path.suffix.lower() in TEXT_EXTS]
    if tables:
        raise AvemoError(f"{tables[0].path}: {len(tables)} of the samples are rows of a table, not media files; "
                         "scoring analyses recordings and photos (FER-2013: its image release)")
    if not samples:
        splits = sorted({str(s.split) for s in corpus if s.split})
        raise AvemoError(f"{corpus.root}: no labelled media files found" + (f" of kind {kind}" if kind else "")
                         + (f" in split {split!r} (its splits: {', '.join(splits) or 'none'})" if split else ""))
    return select(samples, limit, seed)


def trained_on(model_names: dict[str, str]) -> dict[str, set[str]]:
    """The corpora each model bundle learnt from or was fitted on, as its card's metadata names them."""
    from avemo.models.bundles import load

    out: dict[str, set[str]] = {}
    for name in model_names.values():
        try:
            meta = load(name).meta
        except Exception:  # a bundle that does not load fails in the analysis, with its own message
            continue
        text = _key(repr([v for k, v in meta.items() if k in ("trained_on", "corpus", "fitted_on", "chosen_on")]))
        found = {c for c in KNOWN_CORPORA if _key(c) in text}
        if found:
            out[name] = {_key(c) for c in found}
    return out


def seen_corpora(samples: Sequence[Sample], model_names: dict[str, str]) -> dict[str, list[str]]:
    """Corpus of the data -> the bundles that learnt from it (their scores on it are not held out)."""
    learnt = trained_on(model_names)
    out: dict[str, list[str]] = {}
    for corpus in sorted({s.corpus for s in samples}):
        names = [name for name, corpora in learnt.items() if _key(corpus) in corpora]
        if names:
            out[corpus] = names
    return out


@dataclass
class ScoreReport:
    """What a scoring run did and found: ``metrics`` per modality and reading (see :func:`metrics`)."""

    out_dir: Path
    scored: int  #: clips scored in this run
    reused: int  #: clips already scored by an earlier run with the same settings
    failed: dict[str, str]  #: path -> why, this run's failures
    metrics: dict[str, Any]
    interrupted: bool = False


def _columns(modalities: Sequence[str]) -> list[str]:
    return BASE_COLUMNS + [c for m in modalities for c in (f"{m}_answer", *(f"{m}_{e}" for e in EMOTIONS))]


def _stamp(analyzer: Any) -> dict[str, Any]:
    return {"models": dict(analyzer.model_names), "config": asdict(analyzer.config)}


def score(samples: Sequence[Sample], analyzer: Any, out_dir: str | Path, *, force: bool = False,
          on_clip: Callable[[dict[str, Any]], None] | None = None) -> ScoreReport:
    """Analyse each sample's file and score the answers; rows go to ``out_dir/predictions.csv`` as they come,
    ``metrics.json`` and one confusion figure per modality (``confusion_<modality>.png``) at the end (also after
    Ctrl-C, which then raises :class:`ScoreInterrupted` carrying the report). Clips already in
    ``predictions.csv`` from a run with the same models and settings are kept (``force``: score all again); one
    with other settings is refused."""
    from avemo.inference.batch import failure_message

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    modalities = ["face", "voice", *(["text"] if analyzer.config.text else []), "fused"]
    columns = _columns(modalities)
    rows_path, stamp_path = out_dir / "predictions.csv", out_dir / "settings.json"
    stamp = _stamp(analyzer)
    done: dict[str, dict[str, Any]] = {}
    if rows_path.is_file() and not force:
        if not stamp_path.is_file() or json.loads(stamp_path.read_text()) != json.loads(json.dumps(stamp)):
            raise AvemoError(f"{out_dir} holds scores of other models or settings ({stamp_path}): give another "
                             f"--out, or --force to score everything again there")
        try:
            old = pd.read_csv(rows_path, dtype={"uid": str, "error": str}, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise AvemoError(f"{rows_path}: cannot be read ({exc}); --force scores everything again") from None
        done = {r["uid"]: r for r in old.to_dict("records") if r.get("status") == "done"}
    stamp_path.write_text(json.dumps(stamp, indent=2) + "\n")
    wanted = {s.uid for s in samples}
    with rows_path.open("w", newline="", encoding="utf-8") as f:  # the earlier run's finished rows, then the new
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for uid, row in done.items():
            if uid in wanted:
                writer.writerow(row)
    reused = sum(uid in wanted for uid in done)
    failed: dict[str, str] = {}
    scored = 0
    interrupted = False
    try:
        with rows_path.open("a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
            for sample in samples:
                if sample.uid in done:
                    continue
                row: dict[str, Any] = {"uid": sample.uid, "path": str(sample.path), "corpus": sample.corpus,
                                       "speaker": sample.speaker, "label": sample.label, "status": "done",
                                       "error": ""}
                t0 = time.perf_counter()
                try:
                    summary = analyzer.analyze(sample.path).summary()
                    for m in modalities:
                        dist = summary.get(f"{m}_distribution")
                        row[f"{m}_answer"] = "" if not dist else max(dist, key=dist.get)
                        for e in EMOTIONS:
                            row[f"{m}_{e}"] = "" if not dist else dist.get(e, 0.0)
                    scored += 1
                except Exception as exc:  # one bad file fails alone
                    row.update(status="failed", error=failure_message(sample.path, exc))
                    failed[str(sample.path)] = row["error"]
                row["seconds"] = round(time.perf_counter() - t0, 3)
                writer.writerow(row)
                f.flush()
                if on_clip is not None:
                    on_clip(row)
    except KeyboardInterrupt:
        interrupted = True
    table = pd.read_csv(rows_path, dtype={"uid": str, "error": str}, keep_default_na=False)
    result = metrics(table, modalities)
    result["failed"] = int((table["status"] == "failed").sum())
    result["not_scored"] = len(wanted) - len(table)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    for m in modalities:
        if m in result and result[m]["within"]["answered"] > 0:
            plot_confusion(result[m]["within"], out_dir / f"confusion_{m}.png",
                           f"{m}: UAR {100 * result[m]['within']['uar']:.1f} %\n"
                           f"{len(result['classes'])} classes, {result[m]['within']['n']} clips")
    report = ScoreReport(out_dir, scored, reused, failed, result, interrupted)
    if interrupted:
        raise ScoreInterrupted(report)
    return report


class ScoreInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`score`: what was scored is written (``report``)."""

    def __init__(self, report: ScoreReport) -> None:
        super().__init__("interrupted")
        self.report = report


def _answers(table: pd.DataFrame, modality: str, classes: Sequence[str], mode: str) -> list[str]:
    """Each clip's answer in one reading: the argmax over ``classes`` (within) or over all eight (open)."""
    names = list(classes) if mode == "within" else list(EMOTIONS)
    probs = table[[f"{modality}_{e}" for e in names]].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    has = ~np.isnan(probs).any(axis=1)
    best = np.nanargmax(np.where(has[:, None], probs, 0.0), axis=1)
    return [names[k] if ok else NO_ANSWER for k, ok in zip(best, has)]


def metrics(table: pd.DataFrame, modalities: Sequence[str]) -> dict[str, Any]:
    """Scores of the ``done`` rows of a predictions table, per modality and reading: ``n``, ``answered`` (share
    of clips with an answer), ``accuracy``, ``macro_f1``, ``uar`` (no answer counting as wrong), per-class
    recall, the confusion (rows: the data's classes; columns: the answers, ``no answer`` last), and accuracy and
    UAR per speaker and per corpus (within)."""
    from sklearn.metrics import f1_score, recall_score

    rows = table[table["status"] == "done"].reset_index(drop=True)
    classes = [e for e in EMOTIONS if e in set(rows["label"])]
    out: dict[str, Any] = {"clips": int(len(rows)), "classes": classes,
                           "chance_uar": round(1.0 / len(classes), 4) if classes else None,
                           "label_counts": {e: int((rows["label"] == e).sum()) for e in classes}}
    if not classes:
        return out
    truth = rows["label"].tolist()
    for m in modalities:
        out[m] = {}
        for mode in MODES:
            answers = _answers(rows, m, classes, mode)
            columns = (classes if mode == "within" else list(EMOTIONS)) + [NO_ANSWER]
            recall = recall_score(truth, answers, labels=classes, average=None, zero_division=0)
            entry = {
                "n": len(truth),
                "answered": round(float(np.mean([a != NO_ANSWER for a in answers])), 4),
                "accuracy": round(float(np.mean([a == t for a, t in zip(answers, truth)])), 4),
                "macro_f1": round(float(f1_score(truth, answers, labels=classes, average="macro",
                                                 zero_division=0)), 4),
                "uar": round(float(np.mean(recall)), 4),
                "per_class_recall": {c: round(float(r), 4) for c, r in zip(classes, recall)},
                "rows": classes, "columns": columns,
                "confusion": [[sum(1 for a, t in zip(answers, truth) if t == r and a == c) for c in columns]
                              for r in classes],
            }
            if mode == "within":
                for group in ("speaker", "corpus"):
                    entry[f"by_{group}"] = {}
                    for key, idx in rows.groupby(group).groups.items():
                        t = [truth[i] for i in idx]
                        a = [answers[i] for i in idx]
                        present = sorted(set(t), key=EMOTIONS.index)
                        entry[f"by_{group}"][str(key)] = {
                            "n": len(t), "accuracy": round(float(np.mean([x == y for x, y in zip(a, t)])), 4),
                            "uar": round(float(np.mean(recall_score(t, a, labels=present, average=None,
                                                                    zero_division=0))), 4)}
            out[m][mode] = entry
    if "fused" in modalities:
        out["fusion"] = _fusion_effect(rows, modalities, classes, truth)
    return out


def _fusion_effect(rows: pd.DataFrame, modalities: Sequence[str], classes: Sequence[str],
                   truth: Sequence[str]) -> dict[str, Any]:
    """What the fusion did to each single modality's answer, clip by clip (within the data's classes): how often the
    fused answer is right where that modality was wrong (``fixed``) and wrong where it was right (``broke``)."""
    right = {m: np.array([a == t for a, t in zip(_answers(rows, m, classes, "within"), truth)])
             for m in modalities}
    out: dict[str, Any] = {}
    for m in modalities:
        if m == "fused":
            continue
        out[m] = {"fixed": int((right["fused"] & ~right[m]).sum()), "broke": int((~right["fused"] & right[m]).sum())}
    singles = [m for m in modalities if m != "fused"]
    any_right = np.any([right[m] for m in singles], axis=0)
    out["none_right_fused_right"] = int((right["fused"] & ~any_right).sum())
    out["some_right_fused_wrong"] = int((~right["fused"] & any_right).sum())
    return out


def plot_confusion(entry: dict[str, Any], path: Path, title: str) -> Path:
    """A row-normalised confusion (with counts) of one modality's answers, ``no answer`` as the last column."""
    from avemo.training.metrics import plot_confusion as draw

    return draw(entry["confusion"], entry["rows"], path, title=title, columns=entry["columns"])
