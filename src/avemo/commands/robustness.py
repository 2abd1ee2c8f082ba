"""``avemo robustness``: one report on the face, voice and fusion bundles under noise, channel changes, occlusion,
pose, a missing modality and adversarial attacks, with one defence (:mod:`avemo.robustness.report`)."""

from __future__ import annotations

import argparse

HELP = "robustness report of the face, voice and fusion bundles (noise, occlusion, missing modality, attacks)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--face", help="face bundle name or folder (default: the analyzer's)")
    p.add_argument("--voice", help="voice bundle name or folder (default: the analyzer's)")
    p.add_argument("--fusion", help="fusion bundle name or folder (default: the analyzer's)")
    p.add_argument("--quick", action="store_true", help="tiny subsets: a smoke test, not a measurement")
    p.add_argument("--results", default="benchmarks/results/robustness",
                   help="folder for report.json and the figures (default: benchmarks/results/robustness)")
    p.add_argument("--out", default="BENCHMARKS.md", help="file whose robustness section is (re)written")
    p.add_argument("--scale", type=float, default=1.0,
                   help="use this share of every part's default subset (e.g. 0.35 on a slow machine; default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads for the attacks (default 1)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from avemo.robustness.report import run as run_report
    from avemo.robustness.report import write

    torch.set_num_threads(max(1, args.threads))
    sizes = None
    if args.scale != 1.0:
        if not 0 < args.scale <= 1:
            print(f"avemo robustness: --scale must be in (0, 1], got {args.scale}")
            return 2
        from avemo.robustness.report import scaled_sizes

        sizes = scaled_sizes(args.scale)
    result = run_report(face=args.face, voice=args.voice, fusion=args.fusion, quick=args.quick, sizes=sizes,
                        log=lambda line: print(line, flush=True))
    if sizes is not None:
        result["command"] += f" --scale {args.scale}"
    path = write(result, Path(args.results), Path(args.out))
    print(f"robustness section written to {path} ({sum(result['seconds'].values()) / 60:.1f} min)")
    return 0
