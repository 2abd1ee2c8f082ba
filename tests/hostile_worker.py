"""The process the hostile-file tests (``test_hostile_files.py``) feed files to, one JSON request per line on stdin:

    {"op": "read", "path": ...}     probe, then up to 25 sampled frames and 30 s of audio (or the image)
    {"op": "analyze", "path": ...}  ``Analyzer.analyze`` with the default bundles (loaded once)

and one JSON answer per line on stdout: ``{"ok": true, "peak_mb": ..., "rss_before_mb": ...}`` (the resident
peak during this request, and what was resident before it) or ``{"ok": false, "type": ..., "avemo":
<an AvemoError?>, "message": ..., "peak_mb": ...}``. A hang or a crash is what the parent sees when no answer
comes (it kills and restarts this process). The address space is capped (``--max-gb``), so an allocation that
would run the machine out of memory fails here as a MemoryError (a test failure) instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path


def _read(path: Path) -> dict:
    from avemo.media import is_image, iter_audio, iter_frames, probe, read_image

    if is_image(path):
        return {"shape": list(read_image(path).shape)}
    info = probe(path)
    frames = samples = 0
    if info.has_video:
        for frames, _ in enumerate(iter_frames(path, 5.0, max_side=160), start=1):  # noqa: B007
            if frames >= 25:
                break
    if info.has_audio:
        for chunk in iter_audio(path, 16000, chunk_seconds=2.0):
            samples += chunk.size
            if samples >= 30 * 16000:
                break
    return {"duration": info.duration, "frames": frames, "samples": samples}


def _status_mb(field: str) -> float:
    """A field of /proc/self/status in MB (VmRSS: resident now; VmHWM: the resident peak since the last reset)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    try:  # Linux: "5" resets the resident-set peak (VmHWM), so each request's peak is its own
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--max-gb", type=float, default=8.0)
    args = p.parse_args()
    cap = int(args.max_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    from avemo.errors import AvemoError

    analyzer = None
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        path = Path(request["path"])
        rss_before = _status_mb("VmRSS")
        _reset_peak()
        try:
            if request["op"] == "analyze":
                if analyzer is None:
                    from avemo.inference.analyzer import Analyzer

                    analyzer = Analyzer("default")
                answer = {"ok": True, "rows": len(analyzer.analyze(path))}
            else:
                answer = {"ok": True, **_read(path)}
        except Exception as exc:  # reported to the parent, which decides whether it is the library's own error
            answer = {"ok": False, "type": type(exc).__name__, "avemo": isinstance(exc, AvemoError),
                      "message": str(exc)[:600]}
        answer["peak_mb"], answer["rss_before_mb"] = _status_mb("VmHWM"), rss_before
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
