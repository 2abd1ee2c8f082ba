"""Parameter counts and CPU inference time per second of media for every reviewed system.

Each system is built at its default (paper-like) size and run in eval mode on one example covering
``spec.seconds`` of media (3 s of 64-band log-mel at 100 frames/s and the face crops of the same
3 s, 15 at 5 fps; key-frame systems: their key frame). Timing is the median of ``--repeat`` runs
after warm-up, divided by the seconds covered: below 1.0 means faster than real time. Only the
network is timed (not decoding, face detection or the log-mel front end).

Results go to ``benchmarks/results/systems/`` (not ``benchmarks/results/``, whose JSON files are all
accuracy results that ``avemo bench accuracy`` renders).

    python benchmarks/systems_cost.py [--threads 2] [--repeat 7] [--out benchmarks/results/systems/systems_cost.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from avemo.models.registry import create_model, list_models

SYSTEMS = ("mocanu2023_cma", "akturk2024_onn", "akturk2024_onn_face", "akturk2024_onn_voice", "almulla2024_fvt",
           "dixit2024_cnn", "dixit2024_cnn_early", "dixit2024_cnn_audio", "dixit2024_cnn_video", "zhang2016_cnnrnn",
           "khan2024_mser", "kozlov2024_fuzzy", "hao2020_ensemble", "farhoudi2021_bel", "goncalves2024_robust",
           "ma2020_shgr")


def measure(name: str, repeat: int) -> dict:
    torch.manual_seed(0)
    model = create_model(name).eval()
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    x = model.example_inputs(1)
    times = []
    with torch.inference_mode():
        for _ in range(2):
            model(**x)
        for _ in range(repeat):
            t = time.perf_counter()
            model(**x)
            times.append(time.perf_counter() - t)
    seconds = model.spec.seconds
    return {"system": name, "parameters": params, "buffers": buffers, "media_seconds": seconds,
            "inputs": {k: list(v.shape) for k, v in x.items()},
            "latency_ms": round(1000 * statistics.median(times), 2),
            "seconds_per_media_second": round(statistics.median(times) / seconds, 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "systems" / "systems_cost.json"))
    ap.add_argument("--markdown", default="BENCHMARKS.md", help="file whose section is rewritten ('': none)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    missing = set(SYSTEMS) - set(list_models())
    if missing:
        raise SystemExit(f"not registered: {sorted(missing)}")
    rows = [measure(n, args.repeat) for n in SYSTEMS]
    print(f"{'system':24s} {'params':>11s} {'latency ms':>11s} {'s per s media':>14s}")
    for r in rows:
        print(f"{r['system']:24s} {r['parameters']:11,d} {r['latency_ms']:11.1f} {r['seconds_per_media_second']:14.4f}")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=False).stdout.strip()
    except OSError:
        commit = ""
    meta = {"command": "python benchmarks/systems_cost.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                                      if k != "out"),
            "commit": commit, "torch": torch.__version__, "threads": args.threads,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
            "load_average_1min": round(os.getloadavg()[0], 2), "device": "cpu"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "systems": rows}, indent=2) + "\n")
    print(f"written {out}")
    if args.markdown:
        from avemo.markdown import replace_section

        replace_section(Path(args.markdown), BEGIN, END, render(meta, rows))
        print(f"section written to {args.markdown}")


BEGIN, END = "<!-- systems-cost:begin -->", "<!-- systems-cost:end -->"


def render(meta: dict, rows: list[dict]) -> str:
    """The systems' size and inference cost as a BENCHMARKS.md section."""
    lines = [BEGIN, "## Systems: parameters and inference cost", "",
             f"Default widths, one example = 3 s of media (log-mel 64 x 300 and 15 face crops 48 x 48 at 5 fps, or "
             f"the system's own inputs); network forward only, median of repeats. Command: `{meta['command']}`, "
             f"commit `{meta['commit']}`, {meta['machine']}, torch {meta['torch']} ({meta['threads']} thread), "
             f"1-min load average {meta['load_average_1min']} when measured.", "",
             "| system | parameters | ms per example | seconds per second of media |", "| --- | --- | --- | --- |"]
    lines += [f"| `{r['system']}` | {r['parameters']:,} | {r['latency_ms']:.1f} | {r['seconds_per_media_second']:.4f} |"
              for r in rows]
    return "\n".join([*lines, "", END])


if __name__ == "__main__":
    main()
