"""``avemo demo``: the main job on one clip, printed: per-window face, voice and fused emotions."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "analyse one clip and print per-window face, voice and fused emotions (what `make demo` runs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a video, audio file or photo")
    p.add_argument("--out", default="demo-out", help="where the timeline, summary and plot go (default demo-out)")


def run(args: argparse.Namespace) -> int:
    from avemo.inference.plot_worker import PlotWorker

    with PlotWorker() as plotter:  # matplotlib imported by the helper while this starts up (as avemo analyze)
        return _run(args, plotter)


def _run(args: argparse.Namespace, plotter: Any) -> int:
    from pathlib import Path

    from avemo.commands.inspect_media import describe
    from avemo.inference.analyzer import Analyzer
    from avemo.inference.batch import write_outputs

    print(describe(args.path))
    print()
    analyzer = Analyzer("default")
    timeline = analyzer.analyze(args.path)
    print(format_timeline(timeline))
    summary = timeline.summary()
    face, voice = summary["face_dominant"] or "no face", summary["voice_dominant"] or "no speech"
    print(f"\ndominant emotion: {summary['dominant'] or 'none'}  (face: {face}, voice: {voice})")
    out = Path(args.out) / Path(args.path).stem
    write_outputs(timeline, out, plotter)
    print(f"timeline, summary and plot written to {out}/")
    return 0


def format_timeline(timeline) -> str:
    """One line per window: time span, the top face, voice and fused emotion with probabilities, then how much
    each modality weighed in the fused answer (and "uncertain" where the fused label is under one half)."""
    weights = [c for c in timeline.columns if str(c).startswith("weight_")]
    rows = [f"{'window':>13}  {'face':<17}{'voice':<17}{'fused':<17}{'weights' if weights else ''}"]
    for _, r in timeline.iterrows():
        cells = []
        for modality in ("face", "voice", "fused"):
            probs = {lab: r[f"{modality}_{lab}"] for lab in timeline.labels}
            if any(v != v for v in probs.values()):  # NaN: modality absent
                cells.append("—")
            else:
                top = max(probs, key=probs.get)
                cells.append(f"{top} {probs[top]:.2f}")
        shares = " ".join(f"{c.removeprefix('weight_')} {r[c]:.2f}" for c in weights if r[c] > 0)
        flag = "  uncertain" if bool(r.get("uncertain", False)) else ""
        rows.append((f"{r['start']:5.1f}-{r['end']:5.1f} s  " + "".join(f"{c:<17}" for c in cells) + shares
                     + flag).rstrip())
    return "\n".join(rows)
