"""``avemo bench accuracy``: render the accuracy section of BENCHMARKS.md from benchmarks/results/*.json."""

from __future__ import annotations

import argparse

HELP = "render BENCHMARKS.md's accuracy tables from the stored results (benchmarks/results/*.json)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["accuracy"], help="which benchmark to render")
    p.add_argument("--results", default="benchmarks/results", help="folder of stored results")
    p.add_argument("--out", default="BENCHMARKS.md", help="file whose accuracy section is (re)written")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avemo.training.report import write_accuracy_section

    path = write_accuracy_section(Path(args.results), Path(args.out))
    print(f"accuracy section written to {path}")
    return 0
