"""The run folder, per-epoch JSONL logs, resumable checkpoints and progress bars shared by the runners.

A checkpoint holds plain tensors and dicts only (model and optimiser state dicts, the epoch, the
log so far) and is read back with ``torch.load(weights_only=True)``. Randomness per epoch is derived
from ``(seed, fold, epoch)``, so a resumed run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avemo.provenance import git_commit, machine

__all__ = ["git_commit", "machine"]  # re-exported: runs record them


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")  # per process: concurrent folds write run.json
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomically write a checkpoint of plain tensors and dicts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """A checkpoint written by :func:`save_checkpoint` (``None`` when there is none)."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def generator(*keys: int) -> torch.Generator:
    """A torch generator seeded from integers (seed, fold, epoch, ...)."""
    g = torch.Generator()
    g.manual_seed(hash(tuple(int(k) for k in keys)) % (2**63 - 1))
    return g


@contextmanager
def progress(enabled: bool = True) -> Iterator[Any]:
    """A rich progress display (bars for folds, epochs, batches), quiet where output is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True, disable=not (enabled and console.is_terminal))
    with bar:
        yield bar


class Timer:
    """Wall-clock seconds since creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def folds_to_train(folds: Sequence[Any], run_dir: Path, only: Sequence[int] | None,
                   written: list[Path]) -> Iterator[tuple[Any, Path]]:
    """The folds (and their folders) still to train; finished folds (``predictions.npz`` present) and
    folds not in ``only`` are skipped, the finished ones appended to ``written``."""
    for fold in folds:
        if only is not None and fold.index not in only:
            continue
        out = run_dir / f"fold_{fold.index}"
        if (out / "predictions.npz").is_file():
            written.append(out / "predictions.npz")
            continue
        yield fold, out


def save_predictions(path: Path, y: np.ndarray, parts: dict[str, np.ndarray],
                     predict: Callable[[np.ndarray], dict[str, np.ndarray]]) -> Path:
    """``{part}_{key}`` of ``predict(idx)``, ``{part}_idx`` and ``{part}_y`` for each part (val, test) in one npz."""
    arrays: dict[str, np.ndarray] = {}
    for part, idx in parts.items():
        if idx.size:
            arrays.update({f"{part}_{k}": v for k, v in predict(idx).items()})
        arrays[f"{part}_idx"] = idx
        arrays[f"{part}_y"] = y[idx]
    np.savez(path, **arrays)
    return path


def end_epoch(record: dict[str, Any], log_path: Path, ckpt_path: Path, model: torch.nn.Module,
              optim: torch.optim.Optimizer, bar: Any = None, task: Any = None) -> None:
    """Append the epoch's log line, save the resumable checkpoint, advance and print on the progress bar."""
    append_jsonl(log_path, record)
    save_checkpoint(ckpt_path, {"epoch": record["epoch"], "model": model.state_dict(), "optim": optim.state_dict()})
    if bar is not None:
        bar.update(task, advance=1)
        bar.console.log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
