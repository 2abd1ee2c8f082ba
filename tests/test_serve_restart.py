"""A server killed in the middle of a batch of jobs (SIGKILL, as a crash) and started again on the same
data folder: no finished result is lost, the job that was running is failed with the reason (never
silently lost), and the jobs still waiting run after the restart."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from avemo.serve.harness import ServerProcess


def _jobs(server: ServerProcess) -> dict[str, dict]:
    return {j["id"]: j for j in requests.get(f"{server.url}/v1/jobs", params={"limit": 500}, timeout=30).json()["jobs"]}


def test_restart_mid_batch_loses_nothing(tmp_path: Path, clips: dict[str, Path]) -> None:
    server = ServerProcess(tmp_path / "data", workers=1).start()
    try:
        batch = [clips[k] for k in ("cremad_ang", "cremad_hap", "cremad_sad")] * 2
        ids = []
        for clip in batch:
            r = requests.post(f"{server.url}/v1/analyze", timeout=60,
                              files={"file": (clip.name, clip.read_bytes())})
            assert r.status_code == 202, r.text
            ids.append(r.json()["id"])
        deadline = time.monotonic() + 120
        while True:  # until two are done and the next one is running
            jobs = _jobs(server)
            statuses = [jobs[i]["status"] for i in ids]
            if statuses.count("done") >= 2 and "running" in statuses:
                break
            assert time.monotonic() < deadline, statuses
            time.sleep(0.02)
        server.kill()
    finally:
        server.kill()
    before = {i: jobs[i] for i in ids}
    finished = {i: j for i, j in before.items() if j["status"] == "done"}
    results = {}

    server.start()  # the same data folder
    try:
        after = _jobs(server)
        assert set(ids) <= set(after)  # no job lost
        for job_id, job in finished.items():
            again = requests.get(f"{server.url}/v1/jobs/{job_id}", timeout=30).json()
            assert again["status"] == "done" and again["summary"] == job["summary"]
            results[job_id] = again["result"]["windows"]
            csv = requests.get(f"{server.url}/v1/jobs/{job_id}/timeline.csv", timeout=30)
            assert csv.status_code == 200 and csv.text.count("\n") == len(results[job_id]) + 1
        # what was running when the server died: failed, with the reason; possibly one more that had
        # finished in the last instant (its result is then there)
        for job_id, job in before.items():
            state = after[job_id]
            if job["status"] == "running":
                assert state["status"] in ("failed", "done")
                if state["status"] == "failed":
                    assert "server stopped while this job was running" in state["error"]
        # the ones that waited run now
        waiting = [i for i in ids if before[i]["status"] == "queued"]
        assert waiting
        deadline = time.monotonic() + 180
        while any(_jobs(server)[i]["status"] in ("queued", "running") for i in waiting):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        final = _jobs(server)
        assert all(final[i]["status"] == "done" for i in waiting), [final[i]["error"] for i in waiting]
        # the same clip in both halves of the batch, before and after the restart: the same result
        pairs = [(a, b) for a, b in zip(ids[:3], ids[3:]) if final[a]["status"] == final[b]["status"] == "done"]
        assert len(pairs) >= 1
        for a, b in pairs:
            sa, sb = final[a]["summary"], final[b]["summary"]
            assert sa["dominant"] == sb["dominant"] and sa["windows"] == sb["windows"]
            for emotion, p in sa["fused_distribution"].items():
                assert abs(p - sb["fused_distribution"][emotion]) < 1e-3
    finally:
        server.stop()
