"""Latency of ``avemo live``: the speed benchmark's talking-face video (720p, its own speech) played in real time
through :class:`~avemo.inference.live.LiveAnalyzer`, without and with ``text`` (each utterance transcribed beside
the frames), and its two-person variant with ``all_faces``, rounds interleaved; per row the medians over rounds of
each run's latency median, p95 and max (frame captured to label emitted), frames dropped, the stages' mean
milliseconds per call and the utterances.

Writes ``benchmarks/results/speed/live.json`` and the live section of BENCHMARKS.md.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from avemo.provenance import git_commit, machine

BEGIN, END = "<!-- live:begin -->", "<!-- live:end -->"
ROWS = {"face + voice": {"text": False}, "face + voice + text (--text)": {"text": True},
        "two people, every face (--all-faces)": {"all_faces": True}}
STAGES = ("faces", "face model", "vad", "voice model", "text")


def run(seconds: float = 12.0, rounds: int = 3) -> dict[str, Any]:
    """Each row ``rounds`` times, in turn, on one analyzer (the models loaded once, as ``avemo live`` does)."""
    from avemo.bench.speed import build_test_video
    from avemo.inference.live import LiveAnalyzer

    videos = {1: build_test_video(seconds), 2: build_test_video(seconds, faces=2)}
    analyzer = LiveAnalyzer("default")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ROWS}
    for _ in range(rounds):
        for name, settings in ROWS.items():
            video = videos[2 if settings.get("all_faces") else 1]
            counts: list[int] = []  # faces listed per event (all_faces)
            summary = analyzer.run(video, lambda ev, c=counts: c.append(len(ev.faces or [])), **settings).to_dict()
            runs[name].append({**summary, "faces": sum(counts) / len(counts) if counts else 0.0})

    def med(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    rows = {}
    for name, rs in runs.items():
        rows[name] = {
            **{k: med([r["latency_ms"][k] for r in rs]) for k in ("median", "p95", "max")},
            "max_of_runs": max(r["latency_ms"]["max"] for r in rs),
            "processed": med([r["processed"] for r in rs]), "dropped": med([r["dropped"] for r in rs]),
            "stage_ms": {s: med([r["stage_ms"][s] for r in rs]) for s in STAGES if s in rs[0]["stage_ms"]},
            "utterances": rs[0]["utterances"], "events": med([r["events"] for r in rs]),
            "faces_per_event": med([r["faces"] for r in rs])}
    return {"rows": rows, "video": videos[1].name, "video_2faces": videos[2].name, "seconds": seconds,
            "rounds": rounds, "commit": git_commit(),
            "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average": os.getloadavg(), "models": analyzer.model_names, "fps": analyzer.fps,
            "command": "avemo bench live" + (f" --seconds {seconds:g}" if seconds != 12.0 else "")}


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [BEGIN, "## Live: latency from frame to label (`avemo live`)", "",
             f"`{result['command']}` (commit `{result['commit']}`, {result['date']}; {m['platform']}, "
             f"{m['cpu_count']} CPUs, load average {result['load_average'][0]:.1f} at the end). The speed benchmark's "
             f"{result['seconds']:g} s talking-face video (`{result['video']}`: 1280x720, its own speech) played in "
             f"real time, {result['rounds']} rounds with the rows in turn; the shipped bundles "
             f"({', '.join(f'{k} `{v}`' for k, v in result['models'].items())}), faces sampled at "
             f"{result['fps']:g} fps. Latency is the wall time from a frame's capture (when its timestamp falls "
             "due) to its label; the budget is 300 ms. Medians over the rounds of each run's median, p95 and max "
             "(the worst single event of all rounds beside it), and of the stages' mean milliseconds per call. "
             "With `--text` each utterance (speech up to a pause) is transcribed in a thread of its own while the "
             "frames go on; its column is milliseconds per utterance. The `--all-faces` row plays "
             f"`{result.get('video_2faces', 'the two-person variant')}`: the clip at half width beside its mirror "
             "image (two faces a frame, both through the face network in one batch; "
             + ", ".join(f"{r['faces_per_event']:.2f} faces listed per event" for n, r in result["rows"].items()
                         if "all-faces" in n) + ").", "",
             "| run | latency median / p95 / max (ms) [worst] | frames analysed / dropped | "
             + " | ".join(f"{s} (ms)" for s in STAGES) + " | utterances |",
             "|---|---|---|" + "---|" * len(STAGES) + "---|"]
    for name, r in result["rows"].items():
        stages = " | ".join(f"{r['stage_ms'][s]:.1f}" if s in r["stage_ms"] else "" for s in STAGES)
        lines.append(f"| {name} | {r['median']:.0f} / {r['p95']:.0f} / {r['max']:.0f} [{r['max_of_runs']:.0f}] | "
                     f"{r['processed']} / {r['dropped']} | {stages} | {r['utterances'] or ''} |")
    return "\n".join([*lines, "", END])


def write_section(result: dict[str, Any], out: Path) -> Path:
    from avemo.markdown import replace_section

    return replace_section(out, BEGIN, END, render(result))
