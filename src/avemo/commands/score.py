"""``avemo score``: the shipped (or given) models on your labelled recordings: accuracy, macro-F1 and UAR per
modality, every failure counted, one row per clip kept."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = ("score the models on labelled recordings (a corpus folder, a manifest CSV or a corpus name): accuracy, "
        "macro-F1 and UAR of the face, the voice and the fused answer")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA",
                   help="a manifest CSV (columns path,label; speaker optional), a corpus folder (with --corpus), or "
                        "a corpus name found under $AVEMO_DATA (ravdess, cremad, savee, ...)")
    p.add_argument("--corpus", default=None,
                   help="how the folder's files are labelled: ravdess, cremad, savee, enterface, mead, meld, "
                        "baum1s, fer2013 (for a manifest: the corpus name its rows get)")
    p.add_argument("--label-names", default=None, metavar="CORPUS",
                   help="a manifest's labels are this corpus's own names (meld: joy, anger, ...) rather than "
                        "avemo's (happy, angry, ...)")
    p.add_argument("--kind", choices=("audio", "video", "av", "image"), default=None,
                   help="score only the files of this kind (a corpus with audio-only, video-only and "
                        "audio-visual copies of each take)")
    p.add_argument("--split", default=None,
                   help="score only this predefined split of the corpus (fer2013: private_test or public_test; "
                        "meld: test; a manifest: its split column)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="score N clips, the classes as even as the data allows (a seeded draw)")
    p.add_argument("--seed", type=int, default=0, help="the draw of --limit (default 0)")
    p.add_argument("--out", default=None, help="output folder (default: avemo-score/<data's name>)")
    p.add_argument("--force", action="store_true", help="score every clip again (else finished clips are kept)")
    p.add_argument("--text", action="store_true", help="also transcribe the speech and score the text's answer")
    p.add_argument("--language", default=None, help="with --text: the speech's language (a Whisper code)")
    p.add_argument("--face-model", default=None, help="face bundle name or folder")
    p.add_argument("--voice-model", default=None, help="voice bundle name or folder")
    p.add_argument("--fusion-model", default=None, help="fusion bundle name or folder")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from avemo.errors import AvemoError
    from avemo.inference.analyzer import Analyzer
    from avemo.inference.scoring import (
        ScoreInterrupted,
        default_out,
        labelled_samples,
        read_labelled,
        score,
        seen_corpora,
    )

    console = Console(stderr=True)
    if args.language and not args.text:
        raise AvemoError("--language applies to --text (the transcript's language); add --text")
    corpus = read_labelled(args.data, args.corpus, args.label_names)
    if corpus.excluded:  # counted by the reader's log line; the first says why
        first = corpus.excluded[0]
        console.print(f"left out while reading, for one: {first.path}: {first.reason}" +
                      (" (--label-names CORPUS reads a corpus's own label names)" if first.kind == "bad_label" else ""),
                      soft_wrap=True)
    samples = labelled_samples(corpus, kind=args.kind, split=args.split, limit=args.limit, seed=args.seed)
    models = {k: v for k, v in (("face", args.face_model), ("voice", args.voice_model),
                                ("fusion", args.fusion_model)) if v}
    analyzer = Analyzer(models or "default", text=args.text, language=args.language)
    if args.text:
        analyzer.text_model  # noqa: B018  (an unknown --language fails here, before any file)
    out = Path(args.out) if args.out else default_out(args.data, args.corpus)
    for corpus_name, bundles in seen_corpora(samples, analyzer.model_names).items():
        console.print(f"[yellow]note[/yellow]: {', '.join(bundles)} learnt from {corpus_name} (their cards say so): "
                      "where these clips were among their training data, the scores are not held out", soft_wrap=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("scoring", total=len(samples))

        def step(row: dict) -> None:
            progress.update(task, advance=1, description=f"{row['status']}: {Path(row['path']).name}")
            if row["status"] == "failed":
                progress.console.print(f"[red]failed[/red] {row['error']}", soft_wrap=True)

        try:
            report = score(samples, analyzer, out, force=args.force, on_clip=step)
            progress.update(task, completed=len(samples))
        except ScoreInterrupted as stop:
            report = stop.report
    _print(console, report.metrics)
    console.print(f"{report.scored} scored, {report.reused} kept from an earlier run, {len(report.failed)} failed "
                  f"-> {out}: predictions.csv (one row per clip), metrics.json, confusion_*.png", soft_wrap=True)
    if report.interrupted:
        console.print(f"interrupted with {report.metrics['not_scored']} clips not scored: run the same command "
                      "again to go on", soft_wrap=True)
        return 130
    return 1 if report.failed else 0


def _print(console: Any, m: dict) -> None:
    from rich.table import Table

    if not m.get("classes"):
        console.print("no clip was scored")
        return
    counts = ", ".join(f"{k} {v}" for k, v in m["label_counts"].items())
    table = Table(title=f"{m['clips']} clips, {len(m['classes'])} classes ({counts}); chance UAR "
                        f"{100 * m['chance_uar']:.1f} %", title_justify="left")
    for col in ("modality", "answered", "accuracy", "UAR", "macro-F1", "8-way accuracy", "8-way UAR"):
        table.add_column(col, justify="left" if col == "modality" else "right")
    never = [x for x in ("face", "voice", "text") if x in m and m[x]["within"]["answered"] == 0]
    for modality in ("face", "voice", "text", "fused"):
        if modality in m and modality not in never:
            w, o = m[modality]["within"], m[modality]["open"]
            table.add_row(modality, f"{100 * w['answered']:.0f} %", f"{100 * w['accuracy']:.1f}",
                          f"{100 * w['uar']:.1f}", f"{100 * w['macro_f1']:.1f}", f"{100 * o['accuracy']:.1f}",
                          f"{100 * o['uar']:.1f}")
    table.caption = ("within the data's classes (the answer's argmax over them); 8-way: over all eight; a clip "
                     "without a face or speech counts as wrong for that modality")
    console.print(table)
    effect = m.get("fusion")
    if effect:
        said = [f"{x}: right where it was wrong on {effect[x]['fixed']}, wrong where it was right on "
                f"{effect[x]['broke']}" for x in ("face", "voice", "text") if x in effect and x not in never]
        if said:
            console.print(f"the fused answer against each alone, clips: {'; '.join(said)}", soft_wrap=True)
    if never:
        what = {"face": "a face", "voice": "speech", "text": "words"}
        console.print(f"no clip had {' or '.join(what[x] for x in never)}: not scored", soft_wrap=True)
