"""``avemo bench accuracy``: render the accuracy section of BENCHMARKS.md from benchmarks/results/*.json;
``avemo bench ablation [--run]``: the systems ablation section (:mod:`avemo.training.ablation`)."""

from __future__ import annotations

import argparse

HELP = "render BENCHMARKS.md's accuracy tables from the stored results (benchmarks/results/*.json)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["accuracy", "ablation"], help="which benchmark to render")
    p.add_argument("--results", default="benchmarks/results", help="folder of stored results")
    p.add_argument("--out", default="BENCHMARKS.md", help="file whose accuracy section is (re)written")
    p.add_argument("--run", action="store_true", help="ablation: first train and evaluate what is missing")
    p.add_argument("--systems", help="ablation --run: comma-separated systems (default: all)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avemo.training.report import write_accuracy_section

    if args.what == "ablation":
        from avemo.training.ablation import main

        return main(args)
    path = write_accuracy_section(Path(args.results), Path(args.out))
    print(f"accuracy section written to {path}")
    return 0
