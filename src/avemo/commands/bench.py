"""``avemo bench``: the benchmark sections of BENCHMARKS.md, each written by its harness in :mod:`avemo.bench`.

- ``accuracy``: the accuracy section rendered from ``benchmarks/results/*.json`` (:mod:`avemo.bench.accuracy`);
- ``ablation [--run]``: the reviewed systems' ablation (:mod:`avemo.bench.ablation`);
- ``speed``: ``avemo analyze`` on 60 s of 720p video, configurations side by side (:mod:`avemo.bench.speed`);
- ``startup [--against SRC]``: the start-up of ``avemo analyze``, this code against others (:mod:`avemo.bench.startup`);
- ``batch [--copies N]``: files per second of the folder mode, ``avemo batch`` locally and on Ray with 1 and 2
  workers, on the same files (:mod:`avemo.bench.batch`);
- ``text``: the default analysis against ``--text`` (Whisper transcript + text bundle) on the speed video, side by
  side (:mod:`avemo.bench.speed`);
- ``live``: ``avemo live``'s latency from frame to label on a talking-face video played in real time, without and
  with ``--text`` (:mod:`avemo.bench.live`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HELP = "benchmark sections of BENCHMARKS.md: accuracy and ablation tables from stored results, speed and start-up"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["accuracy", "ablation", "speed", "startup", "batch", "text", "live"],
                   help="which benchmark to run")
    p.add_argument("--results", default="benchmarks/results", help="folder of stored results")
    p.add_argument("--out", default="BENCHMARKS.md", help="file whose section is (re)written")
    p.add_argument("--run", action="store_true", help="ablation: first train and evaluate what is missing")
    p.add_argument("--systems", help="ablation --run: comma-separated systems (default: all)")
    p.add_argument("--repeat", type=int, default=3, help="speed, startup, batch, text, live: rounds (default 3)")
    p.add_argument("--seconds", type=float, default=None,
                   help="speed, text, live: length of the test video (default 60; live 12)")
    p.add_argument("--encodings", default=None,
                   help="speed: comma-separated test encodings (default: all of avemo.bench.encodings; 'none' skips)")
    p.add_argument("--against", action="append", default=[], metavar="NAME=SRC",
                   help="startup: also time the code under SRC (a checkout's src folder), shown as NAME")
    p.add_argument("--copies", type=int, default=6, help="batch: links to the 20 s test video among the files")


def _store(args: argparse.Namespace, name: str, result: dict) -> Path:
    """Write ``result`` to ``<results>/speed/<name>.json``; its path."""
    import json

    stored = Path(args.results) / "speed" / f"{name}.json"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(result, indent=2) + "\n")
    return stored


def _publish(args: argparse.Namespace, name: str, result: dict, write_section: Any, lines: Iterable[str]) -> int:
    """Store ``result``, (re)write its section of ``--out`` with ``write_section`` and print ``lines``."""
    _store(args, name, result)
    write_section(result, Path(args.out))
    for line in lines:
        print(line)
    return 0


def run(args: argparse.Namespace) -> int:
    import json

    if args.what == "ablation":
        from avemo.bench.ablation import main

        return main(args)
    if args.what == "startup":
        from avemo.bench.startup import run as run_startup
        from avemo.bench.startup import write_section
        from avemo.errors import AvemoError

        trees: dict[str, Path | None] = {"this commit": None}
        for item in args.against:
            name, sep, src = item.partition("=")
            if not sep or not Path(src).is_dir():
                raise AvemoError(f"--against expects NAME=SRC with SRC a folder, got {item!r}")
            trees[name] = Path(src).resolve()
        result = run_startup(trees, rounds=args.repeat)
        return _publish(args, "startup", result, write_section, (
            f"{name}: imports {row['imports_s']:.2f} s, models {row['models_s']:.2f} s, CLI {row['cli_s']:.2f} s, "
            f"torch imported: {row['torch_imported']}" for name, row in result["rows"].items()))
    if args.what == "batch":
        from avemo.bench.batch import run as run_batch_bench
        from avemo.bench.batch import write_section as write_batch

        result = run_batch_bench(copies=args.copies, rounds=args.repeat)
        return _publish(args, "batch", result, write_batch, (
            f"{row['mode']}: {row['wall_s']:.1f} s, {row['files_per_s']:.2f} files/s (Ray start-up "
            f"{row['startup_s']:.1f} s)" for row in result["rows"]))
    if args.what == "live":
        from avemo.bench.live import run as run_live
        from avemo.bench.live import write_section as write_live

        result = run_live(args.seconds or 12.0, rounds=args.repeat)
        return _publish(args, "live", result, write_live, (
            f"{name}: latency median {row['median']:.0f} ms, p95 {row['p95']:.0f} ms, max {row['max']:.0f} ms, "
            f"{row['dropped']} frames dropped" for name, row in result["rows"].items()))
    args.seconds = args.seconds or 60.0
    if args.what == "text":
        from avemo.bench.speed import TEXT_VARIANTS, run_all, write_text_cost

        result = run_all(args.seconds, variants=TEXT_VARIANTS, repeat=args.repeat)
        return _publish(args, "text_cost", result, write_text_cost, (
            f"{name}: {row['wall_s']:.2f} s, {row['realtime_factor']:.1f}x real time, text stage "
            f"{row['stages_s'].get('text', 0):.2f} s, {row['text_windows']} windows with words"
            for name, row in result["rows"].items()))
    if args.what == "speed":
        from avemo.bench.speed import run_all, run_encodings, write_section

        result = run_all(args.seconds, repeat=args.repeat)
        if args.encodings != "none":
            names = args.encodings.split(",") if args.encodings else None
            result["encodings"] = run_encodings(args.seconds, repeat=args.repeat, names=names)
        stored = _store(args, "speed", result)
        tta_path = stored.with_name("face_tta.json")  # python benchmarks/face_tta.py
        tta = json.loads(tta_path.read_text()) if tta_path.is_file() else None
        path_path = stored.with_name("face_path.json")  # python benchmarks/face_path.py
        face_path = json.loads(path_path.read_text()) if path_path.is_file() else None
        write_section(result, Path(args.out), tta, face_path)
        for name, row in result["rows"].items():
            print(f"{name}: {row['wall_s']:.2f} s, {row['realtime_factor']:.1f}x real time, "
                  f"peak {row['peak_rss_mb']:.0f} MB")
        for name, row in result.get("encodings", {}).get("rows", {}).items():
            print(f"{name}: floor {row['floor_s']:.2f} s, API {row['api_s']:.2f} s "
                  f"({row['api_over_floor']:.2f}x floor), CLI {row['cli_s']:.2f} s "
                  f"({row['cli_realtime']:.1f}x real time)")
        return 0
    from avemo.bench.accuracy import write_accuracy_section

    path = write_accuracy_section(Path(args.results), Path(args.out))
    print(f"accuracy section written to {path}")
    return 0
