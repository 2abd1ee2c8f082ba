"""Analysing many inputs to a folder: one sub-folder of outputs per input, reruns skip what is done,
and one bad file is reported and skipped, never the end of the run."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from avemo.errors import AvemoError
from avemo.inference.analyzer import Analyzer
from avemo.inference.plot_worker import PlotWorker
from avemo.inference.result import EmotionTimeline

log = logging.getLogger(__name__)

MEDIA_EXTENSIONS = frozenset(
    ".mp4 .mkv .webm .avi .mov .flv .m4v .mpg .mpeg .wmv .3gp .ts "
    ".wav .flac .mp3 .m4a .aac .ogg .opus .wma "
    ".jpg .jpeg .png .bmp .webp .tif .tiff".split()
)


def expand_inputs(items: Iterable[str | Path]) -> list[Path]:
    """Files, folders (searched recursively for media files) and glob patterns -> sorted unique paths.

    A name that is neither an existing path nor a matching pattern is kept, so it fails (and is
    reported) like any other bad input.
    """
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS)
        elif p.exists():
            out.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(item), recursive=True))
            out += [m for m in matches if m.is_file()] or [p]
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def output_names(paths: Sequence[Path]) -> dict[Path, str]:
    """A folder name per input: its stem, with a short hash of its path where stems collide."""
    stems: dict[str, int] = {}
    for p in paths:
        stems[p.stem] = stems.get(p.stem, 0) + 1
    return {p: p.stem if stems[p.stem] == 1 else f"{p.stem}-{hashlib.sha1(str(p.resolve()).encode()).hexdigest()[:6]}"
            for p in paths}


@dataclass
class BatchReport:
    """What a batch did: written folders, inputs skipped as already done, and failures with reasons; ``rows``:
    one per input in order (:data:`RESULT_COLUMNS`), also written to ``results.csv`` in the output folder."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    overview: bool = False  #: whether ``overview.png`` was drawn (two analysed files or more)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`analyze_to_folder`, raised after the finished inputs were settled (plot, ``done.json``)
    and ``results.csv`` written; ``report`` holds them, so a rerun goes on where this one stopped."""

    def __init__(self, report: BatchReport) -> None:
        super().__init__("interrupted")
        self.report = report


#: one row per input of a batch: its outputs' folder and the headline of its ``summary.json``, or the failure
RESULT_COLUMNS = ("input", "status", "folder", "duration", "dominant", "face_dominant", "voice_dominant",
                  "uncertain_share", "error")


def result_row(path: Path | str, status: str, folder: Path, error: str = "") -> dict[str, Any]:
    """An input's row of ``results.csv`` (the summary's fields where it has outputs)."""
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(input=str(path), status=status, error=error or None)
    summary = folder / "summary.json"
    if status != "failed" and summary.is_file():
        s = json.loads(summary.read_text())
        row.update(folder=folder.name, **{k: s.get(k) for k in RESULT_COLUMNS[3:8]})
    return row


def input_stamp(path: Path, analyzer: Analyzer, annotate: bool) -> dict[str, Any]:
    """What makes an input's outputs current: the file (path, size, mtime), the settings and the models."""
    st = path.stat() if path.exists() else None
    return {"source": str(path.resolve()), "size": st.st_size if st else None,
            "mtime_ns": st.st_mtime_ns if st else None, "config": asdict(analyzer.config),
            "models": analyzer.model_names, "annotate": annotate}


def failure_message(path: Path, exc: Exception) -> str:
    """The one-line reason an input failed: the library's own message, or the unexpected error (logged with
    its traceback)."""
    if isinstance(exc, AvemoError):
        return str(exc)
    log.error("unexpected failure on %s", path, exc_info=exc)
    return f"{path}: unexpected {type(exc).__name__}: {exc}"


def write_outputs(timeline: EmotionTimeline, folder: Path, plotter: PlotWorker | None = None) -> list[Path]:
    """Timeline (CSV, JSON), summary (JSON), subtitles (WebVTT) and timeline plot (PNG, drawn by ``plotter`` when
    given) into ``folder``."""
    written = _write_tables(timeline, folder)
    plot = folder / "timeline.png"
    if plotter is not None:
        plotter.plot(timeline, plot)
    else:
        timeline.plot(plot)
    return [*written, plot]


def _write_tables(timeline: EmotionTimeline, folder: Path) -> list[Path]:
    """:func:`write_outputs` but the plot."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / name for name in ("timeline.csv", "timeline.json", "summary.json")]
    timeline.to_csv(written[0], index=False)
    timeline.save_json(written[1])
    written[2].write_text(json.dumps(timeline.summary(), indent=2) + "\n")
    if timeline.attrs.get("media", {}).get("kind") != "image":  # subtitles for what plays over time
        written.append(folder / "timeline.vtt")
        timeline.to_vtt(written[-1])
    return written


@dataclass
class _Pending:
    """An input whose outputs are written but for the plot, which the helper draws while the next input is
    analysed; ``done.json`` is written once the plot is."""

    path: Path
    folder: Path
    stamp: dict[str, Any]
    plot: Callable[[], Path]


def analyze_to_folder(inputs: Sequence[Path], out_dir: Path, analyzer: Analyzer, *, annotate: bool = False,
                      force: bool = False, on_progress: Callable[[Path, str, str], None] | None = None,
                      on_media: Callable[[Path, float, float], None] | None = None,
                      plotter: PlotWorker | None = None) -> BatchReport:
    """Analyse each input into ``out_dir/<name>/``; ``done.json`` there marks it complete for reruns (plots
    drawn by ``plotter`` when given, see :mod:`avemo.inference.plot_worker`, each while the next input is
    analysed).

    ``on_progress(path, status, message)`` is called after each input (status done, skipped or failed), in
    input order; ``on_media(path, seconds_done, duration)`` as each input's media is worked through. With two
    files or more, ``overview.png`` shows them all (:mod:`avemo.inference.overview`).
    """
    report = BatchReport()
    names = output_names(list(inputs))
    pending: _Pending | None = None

    def record(path: Path, status: str, folder: Path) -> None:
        if status == "skipped":
            report.skipped.append(names[path])
        elif status == "done":
            report.done.append(names[path])
        report.rows.append(result_row(path, status, folder, report.failed.get(str(path), "")))
        if on_progress:
            on_progress(path, status, report.failed.get(str(path), ""))

    def settle() -> None:
        """The pending input's plot awaited, then its ``done.json``."""
        nonlocal pending
        if pending is None:
            return
        item, pending = pending, None
        try:
            item.plot()
            (item.folder / "done.json").write_text(json.dumps(item.stamp, indent=2) + "\n")
            status = "done"
        except Exception as exc:  # a plot that failed here too fails its input alone
            report.failed[str(item.path)] = failure_message(item.path, exc)
            status = "failed"
        record(item.path, status, item.folder)

    try:
        for path in inputs:
            folder = out_dir / names[path]
            marker = folder / "done.json"
            stamp = input_stamp(path, analyzer, annotate)
            if not force and marker.is_file() and json.loads(marker.read_text()) == stamp:
                settle()
                record(path, "skipped", folder)
                continue
            plot: Callable[[], Path] | None = None
            try:
                timeline = analyzer.analyze(path, progress=None if on_media is None else
                                            (lambda done, total, p=path: on_media(p, done, total)))
                settle()  # the previous input, whose plot was drawn meanwhile
                folder.mkdir(parents=True, exist_ok=True)
                if plotter is not None:  # drawn while the tables (and the annotated video) are written
                    plot = plotter.submit(timeline, folder / "timeline.png")
                _write_tables(timeline, folder)
                if annotate and timeline["face"].any():
                    from avemo.inference.annotate import annotate_photo, annotate_video

                    if timeline.attrs.get("media", {}).get("kind") == "image":
                        annotate_photo(path, timeline, folder / "annotated.png")
                    else:
                        annotate_video(path, timeline, folder / "annotated.mp4")
                if plot is None:
                    timeline.plot(folder / "timeline.png")
                    plot = lambda f=folder: f / "timeline.png"  # noqa: E731
            except Exception as exc:  # one bad file fails alone, whatever broke
                if plot is not None:  # its answer read, so that one plot at a time is outstanding
                    with contextlib.suppress(Exception):
                        plot()
                settle()
                report.failed[str(path)] = failure_message(path, exc)
                record(path, "failed", folder)
                continue
            pending = _Pending(path, folder, stamp, plot)
    except KeyboardInterrupt as exc:  # Ctrl-C: what is finished is kept (the pending plot awaited), then stop
        settle()
        write_results(report, out_dir)
        raise BatchInterrupted(report) from exc
    settle()
    report.overview = _overview(report, out_dir, plotter)
    write_results(report, out_dir)
    return report


def _overview(report: BatchReport, out_dir: Path, plotter: PlotWorker | None) -> bool:
    """``overview.png``: every analysed file's fused emotion over time in one picture (two files or more);
    whether it is drawn."""
    from avemo.inference.overview import Overview

    named = [(Path(r["input"]).name, out_dir / r["folder"]) for r in report.rows
             if r["status"] != "failed" and r.get("folder")]
    if len(named) < 2:
        return False
    try:
        overview = Overview.from_folders(named)
        if len(overview.strips) < 2:
            return False
        if plotter is not None:
            plotter.plot(overview, out_dir / "overview.png")
        else:
            overview.plot(out_dir / "overview.png")
        return True
    except Exception as exc:  # noqa: BLE001 - the files' own results stand; the overview is a convenience
        log.warning("%s: no overview plot: %s", out_dir, exc)
        return False


def write_results(report: BatchReport, out_dir: Path) -> Path:
    """``out_dir/results.csv``: the batch's rows (every input of this run, failures with their reason), and the
    same as a page, ``report.html`` (:mod:`avemo.inference.report_page`)."""
    import csv

    from avemo.inference.report_page import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(report.rows)
    try:
        write_report(report.rows, out_dir, overview=report.overview)
    except OSError as exc:  # the table stands; the page is a convenience
        log.warning("%s: no report.html: %s", out_dir, exc)
    return path
