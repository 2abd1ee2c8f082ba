"""``avemo bench accuracy``: render the accuracy section of BENCHMARKS.md from benchmarks/results/*.json;
``avemo bench ablation [--run]``: the systems ablation section (:mod:`avemo.bench.ablation`);
``avemo bench speed``: time ``avemo analyze`` on 60 s of 720p video (:mod:`avemo.bench.speed`)."""

from __future__ import annotations

import argparse

HELP = "accuracy and ablation tables from stored results, or a speed run; written into BENCHMARKS.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["accuracy", "ablation", "speed"], help="which benchmark to render")
    p.add_argument("--results", default="benchmarks/results", help="folder of stored results")
    p.add_argument("--out", default="BENCHMARKS.md", help="file whose accuracy section is (re)written")
    p.add_argument("--run", action="store_true", help="ablation: first train and evaluate what is missing")
    p.add_argument("--systems", help="ablation --run: comma-separated systems (default: all)")
    p.add_argument("--repeat", type=int, default=3, help="speed: rounds over the configurations (default 3)")
    p.add_argument("--seconds", type=float, default=60.0, help="speed: length of the test video (default 60)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avemo.bench.accuracy import write_accuracy_section

    if args.what == "ablation":
        from avemo.bench.ablation import main

        return main(args)
    if args.what == "speed":
        import json

        from avemo.bench.speed import run_all, write_section

        result = run_all(args.seconds, repeat=args.repeat)
        stored = Path(args.results) / "speed" / "speed.json"
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_text(json.dumps(result, indent=2) + "\n")
        tta_path = stored.with_name("face_tta.json")  # python benchmarks/face_tta.py
        tta = json.loads(tta_path.read_text()) if tta_path.is_file() else None
        path_path = stored.with_name("face_path.json")  # python benchmarks/face_path.py
        face_path = json.loads(path_path.read_text()) if path_path.is_file() else None
        write_section(result, Path(args.out), tta, face_path)
        for name, row in result["rows"].items():
            print(f"{name}: {row['wall_s']:.2f} s, {row['realtime_factor']:.1f}x real time, "
                  f"peak {row['peak_rss_mb']:.0f} MB")
        return 0
    path = write_accuracy_section(Path(args.results), Path(args.out))
    print(f"accuracy section written to {path}")
    return 0
