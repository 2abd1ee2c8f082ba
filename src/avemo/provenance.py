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


def machine() -> dict[str, Any]:
    """Platform, CPU model and count, Python and torch versions (torch's thread count when torch is loaded)."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "not installed"
    out: dict[str, Any] = {"platform": platform.platform(), "processor": platform.machine(),
                           "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
                           "python": platform.python_version(), "torch": torch_version}
    if "torch" in sys.modules:
        out["torch_threads"] = sys.modules["torch"].get_num_threads()
    return out
