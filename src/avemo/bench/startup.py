"""Start-up of ``avemo analyze``: what a user waits for before and around the work, measured as they run it.

For each code tree (this checkout, and optionally others given with ``--against`` for a before/after
comparison, e.g. a ``git worktree`` of an earlier commit), in fresh processes, rounds interleaved:

- ``imports``: importing the analyzer (``avemo.inference.analyzer``), and whether torch came with it;
- ``models``: building the analyzer and loading the face and voice networks (ONNX sessions);
- ``cli``: ``python -m avemo analyze CLIP --out DIR`` end to end (process start to files written) on the
  shared 2 s CREMA-D clip, so the work itself is small and start-up dominates.

Writes ``benchmarks/results/speed/startup.json`` and the start-up section of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from avemo.config import data_root
from avemo.provenance import git_commit, machine

CLIP = Path("clips/cremad/1001_DFA_HAP_XX.flv")
BEGIN, END = "<!-- startup:begin -->", "<!-- startup:end -->"

_PROBE = """
import json, sys, time
t0 = time.perf_counter()
from avemo.inference.analyzer import Analyzer
t1 = time.perf_counter()
a = Analyzer("default")
a.face_model, a.voice_model
t2 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "models_s": t2 - t1, "torch_imported": "torch" in sys.modules}))
"""


def _env(src: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def measure_once(src: Path | None, clip: Path) -> dict[str, Any]:
    """One fresh-process probe (imports, models) and one CLI run, with the code under ``src`` (None: installed)."""
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=_env(src), check=True)
    out = json.loads(probe.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "avemo", "analyze", str(clip), "--out", tmp], capture_output=True,
                       text=True, env=_env(src), check=True)
        out["cli_s"] = time.perf_counter() - t0
    return out


def run(trees: dict[str, Path | None], rounds: int = 3) -> dict[str, Any]:
    """Every tree ``rounds`` times, in turn; each row keeps the median of each measure and the range of the CLI."""
    clip = data_root() / CLIP
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for _ in range(rounds):
        for name, src in trees.items():
            runs[name].append(measure_once(src, clip))
    rows = {}
    for name, rs in runs.items():
        med = {k: sorted(r[k] for r in rs)[len(rs) // 2] for k in ("imports_s", "models_s", "cli_s")}
        rows[name] = {**med, "cli_runs_s": [r["cli_s"] for r in rs], "torch_imported": rs[0]["torch_imported"],
                      "src": str(trees[name]) if trees[name] else "installed"}
    return {"rows": rows, "clip": str(CLIP), "rounds": rounds, "commit": git_commit(), "machine": machine(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_average": os.getloadavg(),
            "command": "avemo bench startup" + "".join(f" --against '{n}={p}'" for n, p in trees.items() if p)}


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [BEGIN, "## Start-up: `avemo analyze` on a 2 s clip", "",
             f"`{result['command']}` (commit `{result['commit']}`, {result['date']}; {m['platform']}, "
             f"{m['cpu_count']} CPUs, load average {_load(result)}). Fresh processes, "
             f"{result['rounds']} rounds with the code trees in turn, "
             f"medians. The clip is `{result['clip']}` (1.9 s), so the analysis itself is a small part: imports "
             "of the analyzer, loading the face and voice networks, and the command end to end (process start to "
             "files written).", "",
             "| code | torch imported | imports (s) | models (s) | CLI end to end (s) [runs] |",
             "|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        runs = ", ".join(f"{v:.2f}" for v in r["cli_runs_s"])
        lines.append(f"| {name} | {'yes' if r['torch_imported'] else 'no'} | {r['imports_s']:.2f} | "
                     f"{r['models_s']:.2f} | {r['cli_s']:.2f} [{runs}] |")
    return "\n".join([*lines, "", END])


def write_section(result: dict[str, Any], out: Path) -> Path:
    from avemo.markdown import replace_section

    return replace_section(out, BEGIN, END, render(result))


def _load(result: dict[str, Any]) -> str:
    """The 1-minute load average the run ended with, to one decimal ('?' when not recorded)."""
    load = result.get("load_average")
    return f"{load[0]:.1f}" if load else "?"
