"""The `fer` package beside avemo on one video, side by side in one run (issue #13's external comparison).

`fer` (MIT; face only: OpenCV's Haar detector and a mini-Xception trained on FER-2013) needs TensorFlow, which
avemo does not depend on, so it runs from its own environment::

    python3.11 -m venv /tmp/fervenv
    /tmp/fervenv/bin/pip install tensorflow-cpu "setuptools<81" pandas requests tqdm Pillow \\
        opencv-python-headless==4.14.0.94
    /tmp/fervenv/bin/pip install --no-deps fer==25.10.3
    python benchmarks/fer_comparison.py --fer-python /tmp/fervenv/bin/python [--rounds 3] [--render BENCHMARKS.md]

Rows, each a fresh process timed from start to exit, the rows in turn in each round: `fer` as its README uses
it (``FER().detect_emotions(frame)`` on every 6th frame ``cv2.VideoCapture`` gives, i.e. 5 fps at 29.97 fps),
with its default quantised TFLite model and with the Keras model of its older releases; and avemo's command
line (``avemo analyze VIDEO --out DIR``: face at 5 fps, voice, fusion, files and plot). The video is the speed
benchmark's x264 default-preset 1280x720 file (``avemo.bench.encodings``). Writes
``benchmarks/results/speed/fer_comparison.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("benchmarks/results/speed/fer_comparison.json")
BEGIN, END = "<!-- fer-comparison:begin -->", "<!-- fer-comparison:end -->"

_FER = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import cv2
from fer.fer import FER
det = FER(use_tflite=sys.argv[2] == "tflite")
t1 = time.perf_counter()
cap = cv2.VideoCapture(sys.argv[1])
if not cap.isOpened():
    sys.exit(f"{sys.argv[1]}: OpenCV cannot open it")
i = n = found = 0
while True:
    ok, frame = cap.read()
    if not ok:
        break
    if i % 6 == 0:
        n += 1
        found += bool(det.detect_emotions(frame))
    i += 1
t2 = time.perf_counter()
r = resource.getrusage(resource.RUSAGE_SELF)
# VmHWM, not ru_maxrss (which keeps the parent's peak across exec): fer's environment has no avemo to import
peak = next(int(ln.split()[1]) / 1024 for ln in open("/proc/self/status") if ln.startswith("VmHWM:"))
print("FER-RESULT " + json.dumps({"start_s": t1 - t0, "loop_s": t2 - t1, "frames": i, "sampled": n,
      "found": found, "cpu_s": r.ru_utime + r.ru_stime, "peak_rss_mb": peak}))
"""


def run_fer(python: str, video: Path, model: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([python, "-c", _FER, str(video), model], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - t0
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FER-RESULT ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"fer ({model}) on {video} failed:\n{proc.stderr[-2000:]}")
    return {"wall_s": wall, **json.loads(line.split(" ", 1)[1])}


def measure(python: str, rounds: int) -> dict:
    from avemo.bench.encodings import build_video, cli_end_to_end
    from avemo.media import probe
    from avemo.provenance import git_commit, machine

    video = build_video("h264-default-720p")
    info = probe(video)
    runs: dict[str, list[dict]] = {"fer (TFLite, its default)": [], "fer (Keras model)": [], "avemo analyze": []}
    for k in range(rounds):
        runs["fer (TFLite, its default)"].append(run_fer(python, video, "tflite"))
        runs["fer (Keras model)"].append(run_fer(python, video, "keras"))
        runs["avemo analyze"].append(cli_end_to_end(video))
        print(f"round {k + 1}: " + ", ".join(f"{n} {r[-1]['wall_s']:.2f} s" for n, r in runs.items()), flush=True)
    fer_version = subprocess.run([python, "-c", "import fer, tensorflow as tf; print(fer.__version__, tf.__version__)"],
                                 capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
                                 ).stdout.split()
    return {"video": {"path": video.name, "seconds": info.duration, "width": info.width, "height": info.height},
            "rounds": rounds, "runs": runs, "fer": fer_version[0], "tensorflow": fer_version[1],
            "commit": git_commit(), "machine": machine(), "load_average": os.getloadavg(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def render(res: dict) -> str:
    dur = res["video"]["seconds"]
    avemo = statistics.median(r["wall_s"] for r in res["runs"]["avemo analyze"])
    lines = [BEGIN, f"### `fer` beside avemo, side by side (commit `{res['commit']}`, {res['date']})", "",
             f"`python benchmarks/fer_comparison.py --fer-python ...` (`fer` {res['fer']} with TensorFlow "
             f"{res['tensorflow']} in its own environment; how to make it: the script's docstring). Video: "
             f"`{res['video']['path']}` ({dur:.1f} s, {res['video']['width']}x{res['video']['height']}). Each run a "
             f"fresh process, start to exit, {res['rounds']} rounds with the rows in turn; medians [runs]. Machine: "
             f"{res['machine'].get('cpu_model', '')}, {res['machine'].get('cpu_count', '')} CPUs, load average "
             f"{res['load_average'][0]:.1f} at the end. `fer` gives face probabilities per sampled frame and "
             "nothing else; avemo gives face, voice and fused windows, files and a plot.", "",
             "| program | what it does | wall (s) [runs] | × real time | start-up (s) | CPU (s) | peak RSS (MB) | "
             "against avemo |", "|---|---|---|---|---|---|---|---|"]
    what = {"fer (TFLite, its default)": "face only, 5 fps, Haar + quantised mini-Xception",
            "fer (Keras model)": "face only, 5 fps, Haar + Keras mini-Xception",
            "avemo analyze": "face 5 fps + voice + fusion, files and plot"}
    for name, rs in res["runs"].items():
        wall = statistics.median(r["wall_s"] for r in rs)
        start = statistics.median(r.get("start_s", float("nan")) for r in rs)
        cpu = statistics.median(r["cpu_s"] for r in rs)
        rss = max(r["peak_rss_mb"] for r in rs)
        each = ", ".join(f"{r['wall_s']:.2f}" for r in rs)
        lines.append(f"| {name} | {what[name]} | {wall:.2f} [{each}] | "
                     f"{dur / wall:.1f}× | {'–' if start != start else f'{start:.2f}'} | {cpu:.1f} | {rss:.0f} | "
                     f"{wall / avemo:.2f}× |")
    found = res["runs"]["fer (TFLite, its default)"][0]
    ratio = {n: statistics.median(r["wall_s"] for r in rs) / avemo for n, rs in res["runs"].items()}
    tfl, keras = ratio["fer (TFLite, its default)"], ratio["fer (Keras model)"]
    lines += ["", f"Read: avemo's whole analysis (face, voice, fusion, files) takes 1/{tfl:.1f} of the time `fer` "
              f"takes for the face alone with its default model, 1/{keras:.1f} with the Keras model of its older "
              "releases. "
              f"`fer` found a face in {found['found']} of {found['sampled']} sampled frames. Start-up: "
              "imports and model set-up before the first frame (`fer`'s TensorFlow import is most of it).", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fer-python", help="the Python of an environment with fer and TensorFlow")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--render", type=Path, help="write the section into this markdown file (from the stored JSON "
                    "unless --fer-python is given)")
    args = ap.parse_args()
    if args.fer_python:
        res = measure(args.fer_python, args.rounds)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(res, indent=1))
    elif args.render:
        res = json.loads(OUT.read_text())
    else:
        ap.error("give --fer-python (to measure) or --render (from the stored results)")
    text = render(res)
    print(text)
    if args.render:
        from avemo.markdown import replace_section

        replace_section(args.render, BEGIN, END, text)


if __name__ == "__main__":
    main()
