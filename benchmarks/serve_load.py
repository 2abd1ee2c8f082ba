"""`avemo serve` under load, on loopback: a real server (subprocess, the shipped models) takes N uploads
of a short real clip at once; reported are throughput, latency percentiles, and that no job failed or
went missing. Then a restart in the middle of a batch: the server is killed (SIGKILL, as a crash) with
some jobs done, one running and the rest queued, and started again on the same data folder.

Writes benchmarks/results/serve/serve_load.json and the serve-load section of BENCHMARKS.md.

    python benchmarks/serve_load.py [--clients 20] [--workers 1,2]   # measure, then write
    python benchmarks/serve_load.py --render                         # the section from the stored JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import requests

from avemo.config import data_root
from avemo.markdown import replace_section
from avemo.serve.harness import ServerProcess

BEGIN, END = "<!-- serve-load:begin -->", "<!-- serve-load:end -->"
RESULT = Path("benchmarks/results/serve/serve_load.json")
CLIP = "clips/cremad/1001_DFA_HAP_XX.flv"


def _stats(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {}
    return {"p50": round(float(np.percentile(a, 50)), 3), "p95": round(float(np.percentile(a, 95)), 3),
            "max": round(float(a.max()), 3), "mean": round(float(a.mean()), 3), "n": int(a.size)}


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _post(url: str, clip: Path) -> requests.Response:
    return requests.post(f"{url}/v1/analyze", files={"file": (clip.name, clip.read_bytes())}, timeout=300)


def _jobs(url: str) -> dict[str, dict]:
    return {j["id"]: j for j in requests.get(f"{url}/v1/jobs", params={"limit": 500}, timeout=60).json()["jobs"]}


def load_run(clip: Path, clients: int, workers: int, root: Path) -> dict:
    """``clients`` threads upload ``clip`` at the same instant and poll until their job ends."""
    server = ServerProcess(root / f"load-w{workers}", workers=workers).start()
    try:
        warm = requests.post(f"{server.url}/v1/analyze", params={"wait": "true"}, timeout=300,
                             files={"file": (clip.name, clip.read_bytes())}).json()
        assert warm["status"] == "done", warm
        barrier = threading.Barrier(clients)
        records: list[dict] = [{} for _ in range(clients)]

        def client(i: int) -> None:
            barrier.wait()
            t0 = time.perf_counter()
            r = _post(server.url, clip)
            rec = records[i]
            rec.update(start=t0, upload=time.perf_counter() - t0, http=r.status_code)
            if r.status_code != 202:
                rec["status"] = f"http {r.status_code}"
                return
            job_id = r.json()["id"]
            rec["id"] = job_id
            while True:
                job = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=60).json()
                if job["status"] in ("done", "failed"):
                    rec.update(end=time.perf_counter(), status=job["status"], error=job["error"],
                               queued=job["started"] - job["created"], analysis=job["finished"] - job["started"])
                    return
                time.sleep(0.05)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        load_before = os.getloadavg()[0]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        listed = _jobs(server.url)
    finally:
        server.stop()
    done = [r for r in records if r.get("status") == "done"]
    ids = [r.get("id") for r in records]
    lost = sum(1 for i in ids if i is None or i not in listed or listed[i]["status"] not in ("done", "failed"))
    wall = max(r["end"] for r in done) - min(r["start"] for r in records) if done else float("nan")
    duration = warm["media"]["duration"]
    return {"workers": workers, "clients": clients, "jobs": clients, "done": len(done),
            "failed": sum(1 for r in records if r.get("status") == "failed"),
            "errors": sorted({r.get("error") or r.get("status") for r in records if r.get("status") != "done"}),
            "lost": lost, "wall_s": round(wall, 3), "jobs_per_s": round(len(done) / wall, 3),
            "media_x_realtime": round(len(done) * duration / wall, 3),
            "latency_s": _stats([r["end"] - r["start"] for r in done]),
            "upload_s": _stats([r["upload"] for r in records if "upload" in r]),
            "queued_s": _stats([r["queued"] for r in done]), "analysis_s": _stats([r["analysis"] for r in done]),
            "load_average_at_start": round(load_before, 2)}


def restart_run(clip: Path, jobs: int, root: Path) -> dict:
    """A batch of ``jobs``; the server is killed once a quarter of them are done; restarted; checked."""
    server = ServerProcess(root / "restart", workers=1).start()
    try:
        ids = []
        for _ in range(jobs):
            r = _post(server.url, clip)
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        while True:
            before = _jobs(server.url)
            statuses = [before[i]["status"] for i in ids]
            if statuses.count("done") >= jobs // 4 and "running" in statuses:
                break
            time.sleep(0.02)
        t_kill = time.perf_counter()
        server.kill()
    finally:
        server.kill()
    server.start()
    try:
        t_ready = time.perf_counter()
        after = _jobs(server.url)
        kept = [i for i in ids if before[i]["status"] == "done" and after.get(i, {}).get("status") == "done"
                and after[i]["summary"] == before[i]["summary"]]
        while any(_jobs(server.url)[i]["status"] in ("queued", "running") for i in ids):
            time.sleep(0.2)
        final = _jobs(server.url)
    finally:
        server.stop()
    was = {s: [i for i in ids if before[i]["status"] == s] for s in ("done", "running", "queued")}
    return {"jobs": jobs, "done_before_kill": len(was["done"]), "running_at_kill": len(was["running"]),
            "queued_at_kill": len(was["queued"]), "done_kept_after_restart": len(kept),
            "running_failed_with_reason": sum(1 for i in was["running"] if final[i]["status"] == "failed"
                                              and "server stopped while this job was running" in final[i]["error"]),
            "running_reason": next((final[i]["error"] for i in was["running"] if final[i]["error"]), None),
            "queued_done_after_restart": sum(1 for i in was["queued"] if final[i]["status"] == "done"),
            "lost": sum(1 for i in ids if i not in final),
            "restart_to_ready_s": round(t_ready - t_kill, 2)}


def render(result: dict) -> str:
    m, clip = result["machine"], result["clip"]
    lines = [BEGIN, "## Service: `avemo serve` under load (loopback)", "",
             f"{result['clients']} clients upload the same real clip at the same instant (`{clip['name']}`: "
             f"{clip['duration']:.2f} s, {clip['size'] / 1e3:.0f} kB, {clip['format']}: video {clip['video_codec']}, "
             f"audio {clip['audio_codec']}; each job also makes its H.264 browser preview; the plot PNG is drawn "
             "only when first downloaded) and poll "
             "`GET /v1/jobs/{id}` every 50 ms until it ends. One warm-up job first, not counted. Latency: from "
             "the start of the upload to the poll that sees the job finished. Throughput: finished jobs over the "
             "time from the first upload to the last finish. A server is started (subprocess, shipped models) "
             f"for each row. Command `{result['command']}`, commit `{result['commit']}`, {result['date']}. "
             f"Machine: {m['platform']}, {m['cpu_count']} CPUs (1-minute load average at the start of each row in "
             "the table). Models: " + (", ".join(f"`{v}`" for v in result["models"].values()) if "models" in result
                                       else "not recorded (the defaults of that commit)") + ".", "",
             "| workers | jobs | done | failed | lost | throughput (jobs/s) | media × real time | latency p50 / p95 / "
             "max (s) | queued p50 / p95 (s) | analysis per job p50 / p95 (s) | upload p95 (s) | load average |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["runs"]:
        lat, q, a = r["latency_s"], r["queued_s"], r["analysis_s"]
        lines.append(f"| {r['workers']} | {r['jobs']} | {r['done']} | {r['failed']} | {r['lost']} | "
                     f"{r['jobs_per_s']:.2f} | {r['media_x_realtime']:.2f}× | {lat['p50']:.2f} / {lat['p95']:.2f} / "
                     f"{lat['max']:.2f} | {q['p50']:.2f} / {q['p95']:.2f} | {a['p50']:.2f} / {a['p95']:.2f} | "
                     f"{r['upload_s']['p95']:.2f} | {r['load_average_at_start']:.1f} |")
    rs = result["restart"]
    lines += ["", f"Restart in the middle of a batch: {rs['jobs']} jobs of the same clip on one worker; the server "
              f"was killed (SIGKILL) with {rs['done_before_kill']} done, {rs['running_at_kill']} running and "
              f"{rs['queued_at_kill']} queued, then started again on the same data folder (ready "
              f"{rs['restart_to_ready_s']:.1f} s after the kill, models loaded). After the restart: "
              f"{rs['done_kept_after_restart']} of the {rs['done_before_kill']} finished results were there, "
              f"unchanged; {rs['running_failed_with_reason']} of the {rs['running_at_kill']} running job(s) failed "
              f"with the reason (\"{rs['running_reason']}\"); {rs['queued_done_after_restart']} of the "
              f"{rs['queued_at_kill']} queued jobs ran and finished; {rs['lost']} lost.", "",
              "An analysis runs in a worker process that loads the models once (the restart above shows how long "
              "that takes); each worker's analysis already uses two threads (face and voice paths), so on 2 cores "
              "one worker is the default (`--workers`, one per two cores up to four).", "", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts, one row each (default 1,2)")
    ap.add_argument("--restart-jobs", type=int, default=12)
    ap.add_argument("--render", action="store_true", help="only write the section from the stored JSON")
    ap.add_argument("--out", type=Path, default=RESULT)
    ap.add_argument("--markdown", default="BENCHMARKS.md")
    args = ap.parse_args()
    if not args.render:
        clip = data_root() / CLIP
        if not clip.is_file():
            raise SystemExit(f"{clip}: the load benchmark needs the shared clips (set AVEMO_DATA)")
        from avemo.inference.predictors import DEFAULT_MODELS
        from avemo.serve.engine import check_media

        info = check_media(clip, clip.name)
        with tempfile.TemporaryDirectory(prefix="avemo-serve-load-") as tmp:
            runs = []
            for w in (int(x) for x in args.workers.split(",")):
                runs.append(load_run(clip, args.clients, w, Path(tmp)))
                print(json.dumps(runs[-1]), flush=True)
            restart = restart_run(clip, args.restart_jobs, Path(tmp))
            print(json.dumps(restart), flush=True)
        result = {"clip": {"name": clip.name, "size": clip.stat().st_size, **info}, "clients": args.clients,
                  "runs": runs, "restart": restart, "commit": _commit(), "models": dict(DEFAULT_MODELS),
                  "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                              "python": platform.python_version()},
                  "command": "python benchmarks/serve_load.py"}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    result = json.loads(args.out.read_text())
    if args.markdown:
        replace_section(Path(args.markdown), BEGIN, END, render(result))
    print(f"{args.out} -> the serve-load section of {args.markdown}")


if __name__ == "__main__":
    main()
