"""``avemo analyze``: files, folders or globs in; per input a timeline (CSV, JSON), summary and plot out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = "analyse videos, audio files or images: emotions of face, voice and both over time"


def clock_time(text: str) -> float:
    """Seconds from ``SS``, ``MM:SS`` or ``HH:MM:SS`` (each part may have decimals)."""
    try:
        parts = [float(x) for x in text.split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(x < 0 for x in parts) or any(x >= 60 for x in parts[1:]):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time: give seconds, MM:SS or HH:MM:SS")
    return sum(x * 60 ** k for k, x in enumerate(reversed(parts)))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="files, folders (searched recursively), glob patterns or http(s) URLs "
                                              "(downloaded into OUT/downloads first)")
    p.add_argument("--out", default="avemo-out", help="output folder (default: avemo-out)")
    p.add_argument("--window", type=float, default=3.0, help="window length in seconds (default 3)")
    p.add_argument("--hop", type=float, default=1.0, help="step between windows in seconds (default 1)")
    p.add_argument("--fps", type=float, default=5.0, help="face sampling rate (default 5)")
    p.add_argument("--start", type=clock_time, default=0.0, metavar="TIME",
                   help="analyse from this point of each video or audio file: seconds, MM:SS or HH:MM:SS (default 0)")
    p.add_argument("--end", type=clock_time, default=None, metavar="TIME",
                   help="analyse up to this point (default: the end); times in the results stay the file's")
    p.add_argument("--all-faces", action="store_true",
                   help="one timeline per tracked face (a photo: one row per face, up to 4)")
    p.add_argument("--annotate", action="store_true",
                   help="also write a video (a photo: an image) with box, label and bars")
    p.add_argument("--force", action="store_true", help="redo inputs already analysed")
    p.add_argument("--exact-faces", action="store_true",
                   help="MediaPipe on every sampled frame, full-quality decoding and both face views on every "
                        "frame (the default runs MediaPipe on every 2nd frame, carries faces by optical flow "
                        "between, lets the decoder skip its deblocking filter and mirrors every other frame's "
                        "face; about 30%% faster)")
    p.add_argument("--text", action="store_true",
                   help="also transcribe the speech offline (Whisper base) and give each window's words and their "
                        "emotions (text_* columns; English only; about 9 s of CPU per minute of speech; the fusion "
                        "counts the words only in windows that state a feeling, such as 'I feel terrified'; see the "
                        "README)")
    p.add_argument("--language", default=None,
                   help="with --text: the speech's language as a Whisper code (en, de, ...); default: detected on "
                        "the first 10 s of speech (short clips are often taken for another language)")
    p.add_argument("--face-model", default=None, help="face bundle name or folder")
    p.add_argument("--voice-model", default=None, help="voice bundle name or folder")
    p.add_argument("--fusion-model", default=None,
                   help="fusion bundle name or folder (default fusion.reliability: per-window weights from each "
                        "modality's evidence; fusion.decision_557: the published fixed 55/38/7 weights)")


def run(args: argparse.Namespace) -> int:
    from avemo.inference.plot_worker import PlotWorker

    # first: the helper imports matplotlib on the second core while this process starts up (0.4 s less per run)
    with PlotWorker() as plotter:
        return _run(args, plotter)


def _run(args: argparse.Namespace, plotter: Any) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from avemo.inference.analyzer import EXACT_FACES, Analyzer
    from avemo.inference.batch import BatchInterrupted, analyze_to_folder, expand_inputs, result_row, write_results
    from avemo.media.fetch import is_url

    console = Console(stderr=True)
    urls = [i for i in args.inputs if is_url(i)]
    inputs = expand_inputs([i for i in args.inputs if not is_url(i)])
    if not inputs and not urls:
        console.print("avemo analyze: no media files found in the given inputs")
        return 2
    if args.language and not args.text:
        console.print("avemo analyze: --language applies to --text (the transcript's language); add --text")
        return 2
    models = {k: v for k, v in (("face", args.face_model), ("voice", args.voice_model),
                                                 ("fusion", args.fusion_model)) if v}
    analyzer = Analyzer(models or "default", window=args.window, hop=args.hop, fps=args.fps,
                        all_faces=args.all_faces, text=args.text, language=args.language, start=args.start,
                        end=args.end, **(EXACT_FACES if args.exact_faces else {}))
    if args.text:
        analyzer.text_model  # noqa: B018  (loaded once, here: an unknown --language fails before any file)
    out = Path(args.out)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        media = progress.add_task("", total=None, visible=False)  # seconds of the file under way
        fetched, unfetched = _download(urls, out / "downloads", args.force, progress, media)
        inputs = list(dict.fromkeys([*fetched, *inputs]))  # fetched: downloaded file -> its URL
        task = progress.add_task("analysing", total=len(inputs))

        def step(path: Path, status: str, message: str) -> None:
            progress.update(task, advance=1, description=f"{status}: {path.name}")
            progress.update(media, visible=False)
            if status == "failed":
                progress.console.print(f"[red]failed[/red] {message}")

        def within(path: Path, done: float, total: float) -> None:
            progress.update(media, completed=done, total=total, visible=True,
                            description=f"  {path.name}: {done:.0f} / {total:.0f} s of media")

        try:
            report = analyze_to_folder(inputs, out, analyzer, annotate=args.annotate, force=args.force,
                                       on_progress=step, on_media=within, plotter=plotter)
            interrupted = False
        except BatchInterrupted as stop:  # Ctrl-C: the finished files are kept and listed
            report, interrupted = stop.report, True
    left = len(inputs) - len(report.rows)
    for row in report.rows:  # a downloaded file is listed by its URL
        row["input"] = fetched.get(Path(row["input"]), row["input"])
    for url, message in unfetched.items():  # downloads that failed, each alone, listed with the rest
        report.failed[url] = message
        report.rows.append(result_row(url, "failed", out, message))
    if urls:
        write_results(report, out)
    _print_results(console, report.rows, out)
    console.print(f"{len(report.done)} analysed, {len(report.skipped)} already done, "
                  f"{len(report.failed)} failed -> {out} (one row per file: {out / 'results.csv'}; to browse: "
                  f"{out / 'report.html'})", soft_wrap=True)
    if interrupted:
        console.print(f"interrupted with {left} of {len(inputs)} file{'s' * (len(inputs) != 1)} not finished: "
                      "run the same command again to go on (finished files are skipped)", soft_wrap=True)
        return 130
    return 1 if report.failed else 0


def _download(urls: list[str], folder: Path, force: bool, progress: Any, task: Any
              ) -> tuple[dict[Path, str], dict[str, str]]:
    """Each URL's file (downloaded into ``folder``, or found there from an earlier run) -> the URL, and the
    failures (URL -> why), shown on ``progress``'s ``task`` as they come."""
    from avemo.media.fetch import fetch_all

    def shown(url: str, got: int, total: int | None) -> None:
        progress.update(task, completed=got, total=total, visible=True,
                        description=f"  downloading {url.rsplit('/', 1)[-1][:40]}: {got / 1e6:.1f} MB")

    out = fetch_all(urls, folder, force=force, progress=shown,
                    on_error=lambda url, exc: progress.console.print(f"[red]failed[/red] {exc}"))
    progress.update(task, visible=False)
    return out


def _print_results(console: Any, rows: list[dict], out: Path, most: int = 20) -> None:
    """The batch's headline per file (the first ``most`` files; all of them are in ``results.csv``)."""
    from rich.table import Table

    from avemo.media.image import is_image

    table = Table(box=None, pad_edge=False)
    for name in ("file", "duration", "dominant", "face", "voice", "uncertain"):
        table.add_column(name, justify="right" if name in ("duration", "uncertain") else "left")
    for row in rows[:most]:
        if row["status"] == "failed":
            table.add_row(Path(row["input"]).name, "", "[red]failed[/red]", "", "", "")
            continue
        photo = is_image(row["input"])  # a photo has no length and no sound
        duration = "photo" if photo else f"{row['duration']:.1f} s" if row["duration"] is not None else ""
        table.add_row(Path(row["input"]).name, duration, row["dominant"] or "-", row["face_dominant"] or "no face",
                      "-" if photo else row["voice_dominant"] or "no speech",
                      f"{100 * row['uncertain_share']:.0f} %" if row["uncertain_share"] is not None else "")
    console.print(table)
    if len(rows) > most:
        console.print(f"... and {len(rows) - most} more")
