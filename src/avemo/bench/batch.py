"""Batch throughput: files per second of ``avemo analyze FOLDER`` (the plain folder mode), ``avemo batch`` on the
local engine and on a local Ray with 1 and 2 workers, on the same files in one run (rounds interleaved).

The files: the six shared clips (RAVDESS video without sound, two RAVDESS WAVs, three CREMA-D FLVs with MP3
sound) and ``copies`` links to a 20 s 720p talking-face video with sound (the speed benchmark's builder).
Each mode starts from nothing in this process (models load inside the timing; Ray's own start-up is timed
apart), writes into a fresh folder, and must finish every file. The machine's load average is recorded
beside the numbers: on a shared machine the modes compete with whatever else runs.

Writes ``benchmarks/results/speed/batch.json`` and the batch section of BENCHMARKS.md.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from avemo.config import data_root
from avemo.errors import AvemoError
from avemo.provenance import git_commit, machine

BEGIN, END = "<!-- batch:begin -->", "<!-- batch:end -->"
CLIPS = ("clips/ravdess/01-01-08-02-01-01-19.mp4", "clips/ravdess/03-01-08-02-01-01-19.wav",
         "clips/ravdess/03-01-02-01-01-02-01.wav", "clips/cremad/1001_DFA_ANG_XX.flv",
         "clips/cremad/1001_DFA_HAP_XX.flv", "clips/cremad/1001_DFA_SAD_XX.flv")
MODES = ("folder", "local", "ray-1", "ray-2")


def make_inputs(folder: Path, copies: int = 6, seconds: float = 20.0) -> list[Path]:
    """Links to the shared clips and ``copies`` links to a ``seconds`` long 720p talking-face video."""
    from avemo.bench.speed import build_test_video

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in CLIPS:
        src = data_root() / rel
        if not src.is_file():
            raise AvemoError(f"{src}: the batch benchmark needs the shared clips (set AVEMO_DATA)")
        out.append(folder / src.name)
    video = build_test_video(seconds)
    out += [folder / f"talk_{k:02d}.mp4" for k in range(copies)]
    for link, src in zip(out, [data_root() / rel for rel in CLIPS] + [video] * copies):
        if not link.exists():
            link.symlink_to(src)
    return out


def _media_seconds(files: list[Path]) -> float:
    from avemo.media import probe

    return float(sum(probe(f).duration for f in files))


def run_mode(mode: str, files: list[Path], out: Path) -> dict[str, Any]:
    """One mode over ``files`` into ``out``; wall seconds (models loaded inside), Ray's start-up apart."""
    from avemo.scale.batch import BatchSettings, RaySettings, run_batch

    load0 = os.getloadavg()[0]
    startup = 0.0
    if mode == "folder":
        from avemo.inference.analyzer import Analyzer
        from avemo.inference.batch import analyze_to_folder
        from avemo.inference.plot_worker import PlotWorker

        t0 = time.perf_counter()
        with PlotWorker() as plotter:  # as `avemo analyze`: each plot drawn by the helper during the next file
            report = analyze_to_folder(files, out, Analyzer("default"), plotter=plotter)
        wall = time.perf_counter() - t0
        done, failed = len(report.done), len(report.failed)
    else:
        engine, workers = ("local", None) if mode == "local" else ("ray", int(mode.split("-")[1]))
        ray_settings = RaySettings(workers=workers, num_cpus=workers, object_store_mb=200)
        if engine == "ray":
            import ray

            t0 = time.perf_counter()
            ray_settings.init()
            startup = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            result = run_batch(files, out, BatchSettings(), engine=engine, ray_settings=ray_settings)
            wall = time.perf_counter() - t0
        finally:
            if engine == "ray":
                ray.shutdown()
        done, failed = sum(r["status"] == "done" for r in result.records), len(result.failed)
    if failed or done != len(files):
        raise AvemoError(f"batch benchmark, mode {mode}: {done} of {len(files)} files done, {failed} failed")
    return {"mode": mode, "wall_s": wall, "startup_s": startup, "files_per_s": len(files) / wall,
            "files_per_s_with_startup": len(files) / (wall + startup), "load_before": load0,
            "load_after": os.getloadavg()[0]}


def run(copies: int = 6, seconds: float = 20.0, modes: tuple[str, ...] = MODES, rounds: int = 3) -> dict[str, Any]:
    """Every mode in turn, ``rounds`` times (interleaved, so a change in the machine's load hits all modes), on the
    same files; each row keeps the median round and every round's wall time."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="avemo-bench-batch-") as tmp:
        files = make_inputs(Path(tmp) / "in", copies, seconds)
        media_s = _media_seconds(files)
        for k in range(rounds):
            for mode in modes:
                runs[mode].append(run_mode(mode, files, Path(tmp) / f"{mode}-{k}"))
    rows = []
    for rs in runs.values():
        median = sorted(rs, key=lambda r: r["wall_s"])[len(rs) // 2]
        rows.append({**median, "wall_runs_s": [round(r["wall_s"], 1) for r in rs],
                     "startup_runs_s": [round(r["startup_s"], 1) for r in rs]})
    return {"rows": rows, "n_files": len(files), "media_seconds": media_s, "copies": copies, "rounds": rounds,
            "video_seconds": seconds, "commit": git_commit(), "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": f"avemo bench batch --copies {copies} --repeat {rounds}"}


_LABELS = {"folder": "`avemo analyze FOLDER` (folder mode: CSV, JSON, VTT, PNG per file and an overview PNG; "
                     "each plot drawn by a helper process while the next file is analysed)",
           "local": "`avemo batch --engine local`", "ray-1": "`avemo batch --engine ray --workers 1`",
           "ray-2": "`avemo batch --engine ray --workers 2`"}


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [BEGIN, "## Batch analysis: files per second, one process against Ray", "",
             f"`{result['command']}` (commit `{result['commit']}`, {result['date']}; {m['platform']}, "
             f"{m['cpu_count']} CPUs). The same {result['n_files']} files ({result['media_seconds']:.0f} s of media: "
             f"the six shared clips and {result['copies']} links to a {result['video_seconds']:.0f} s 720p "
             f"talking-face video with sound) through each mode in turn, {result.get('rounds', 1)} rounds "
             "interleaved, the median round shown (every round's wall time in brackets); every mode loads its "
             "models inside its time, and Ray's own start-up (a local Ray, object store 200 MB) is timed apart. "
             "Load average: the machine's 1-minute load before and after the median round (the machine is shared, "
             "so the modes compete with other work).", "",
             "| mode | wall (s) [rounds] | files/s | Ray start-up (s) | files/s with start-up | load before / after |",
             "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        start = f"{r['startup_s']:.1f}" if r["startup_s"] else "-"
        runs = ", ".join(f"{w:.0f}" for w in r.get("wall_runs_s", [r["wall_s"]]))
        load = f"{r['load_before']:.1f} / {r['load_after']:.1f}"
        lines.append(f"| {_LABELS.get(r['mode'], r['mode'])} | {r['wall_s']:.1f} [{runs}] | {r['files_per_s']:.2f} | "
                     f"{start} | {r['files_per_s_with_startup']:.2f} | {load} |")
    if m["cpu_count"] and m["cpu_count"] <= 2:
        lines += ["", f"On {m['cpu_count']} cores one analysis already keeps both busy (its face and voice paths run "
                  "side by side), so a second worker has no core of its own to add: Ray's gain is in more machines "
                  "(README, *At scale*), and its start-up is paid once per batch."]
    return "\n".join([*lines, "", END])


def write_section(result: dict[str, Any], out: Path) -> Path:
    from avemo.markdown import replace_section

    return replace_section(out, BEGIN, END, render(result))
