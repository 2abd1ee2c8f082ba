"""Where a number came from: the commit and the machine, recorded beside every stored result (no torch import)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any


def git_commit() -> str:
    """The current commit (short), with ``+dirty`` when tracked files under src/ differ from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: Linux's ``VmHWM``, which starts afresh in a new program.
    (``ru_maxrss`` does not: after ``exec`` it keeps the parent's peak, so a child of a 1 GB benchmark process
    reported 1 GB whatever it used.) Elsewhere ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; else what :func:`platform.processor` says)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_isa() -> str:
    """The widest vector instructions the CPU offers (Linux ``/proc/cpuinfo`` flags): int8 inference and
    floating-point rounding both depend on it, so speed figures from an AVX2 and an AVX-512 machine differ."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f if line.startswith("flags")), set())
    except OSError:
        return "unknown"
    for flag, name in (("avx512_vnni", "AVX-512 + VNNI"), ("avx512f", "AVX-512"), ("avx_vnni", "AVX2 + VNNI"),
                       ("avx2", "AVX2")):
        if flag in flags:
            return name
    return "unknown" if not flags else "below AVX2"


def machine() -> dict[str, Any]:
    """Platform, CPU model and count, Python and torch versions (torch's thread count when torch is loaded)."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    out: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                           "cpu_model": cpu_model(), "cpu_isa": cpu_isa(), "cpu_count": os.cpu_count(),
                           "python": platform.python_version(), "torch": torch_version}
    if "torch" in sys.modules:
        out["torch_threads"] = sys.modules["torch"].get_num_threads()
    return out
