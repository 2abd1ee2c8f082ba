"""Data-parallel training (DDP, gloo) with 2 CPU processes on a small real task: RAVDESS log-mels of three actors,
a small voice CNN with batch norm, SpecAugment, gain and mixup.

Guarantees checked: both ranks end with bit-identical weights; the loss curve and the weights equal those of one
process with the same global batch within a stated tolerance (the only differences are floating-point: the
gradient is summed in another order, batch-norm statistics come from float64 sums); an interrupted run resumes
to exactly the uninterrupted one's weights; only rank 0 writes; ``torchrun -m avemo train`` runs end to end.

Both sides use PyTorch's own convolution, not oneDNN's: oneDNN picks its kernels by batch shape (a rank's half
batch against the whole one), and on AVX-512 CPUs their rounding differs enough (3e-5 in the second epoch's loss,
8e-5 in the weights after three, grown through Adam) to hide what is compared here, the distributed logic.

Measured on this task (3 epochs, AdamW): per-epoch training loss within 2e-6 of one process, validation NLL within
6e-4, weights within 2e-6 - except parameters with no gradient in exact arithmetic (here a bias before batch norm
and one before a softmax): Adam scales their rounding noise up to full steps, so they wander in both runs alike
and differently, without changing what the network computes in training.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from avemo.training import distributed, loop
from avemo.training.recipe import parse_recipe

pytestmark = pytest.mark.slow  # a minute or more on 2 shared cores

#: agreement with one process: per-epoch mean training loss, and every weight after 3 epochs
LOSS_ATOL = 1e-5
VAL_NLL_ATOL = 1e-3
WEIGHT_ATOL = 1e-4

RECIPE = {
    "name": "ddp_tiny", "kind": "voice", "corpus": "ravdess", "seed": 3,
    "protocol": {"name": "holdout", "test_speakers": [3], "val_speakers": 1},
    "data": {"speakers": [1, 2, 3], "per_speaker": 24},
    "features": {"trim_db": 40},
    # dropout 0: a dropout mask is drawn per rank, so with dropout the curves agree in distribution only
    "model": {"name": "voice", "kwargs": {"channels": [8, 16], "emb_dim": 32, "dropout": 0.0}},
    "augment": {"specaugment": {"freq": 4, "time": 10, "n": 1}, "mixup": 0.2, "gain_db": [-12, 6]},
    "optim": {"lr": 0.003, "weight_decay": 0.01, "batch_size": 10, "label_smoothing": 0.1},
    "train": {"epochs": 3, "warmup_epochs": 1, "val_every": 1, "threads": 1},
}


class _Stop(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _task(recipe, mels, y, fold, stop_at=None):
    from avemo.training.voice import VoiceTask

    class Task(VoiceTask):
        def batches(self, epoch, gen, rng):
            if epoch == stop_at:  # interrupted as by a killed job, when this epoch starts
                raise _Stop
            yield from super().batches(epoch, gen, rng)

    return Task(recipe, mels, y, fold.train, fold.val)


def _fit(recipe, mels, y, fold, out: Path, stop_at=None):
    from avemo.training.trainer import Trainer

    task = _task(recipe, mels, y, fold, stop_at)
    return Trainer(task, optim=recipe.optim, train=recipe.train, out_dir=out, seed=(recipe.seed, 0)).fit()


def _worker(rank: int, world: int, port: int, recipe, mels, y, fold, out: str, results: str, stop_at) -> None:
    torch.backends.mkldnn.enabled = False  # as in the one-process run (module docstring)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    try:
        model = _fit(recipe, mels, y, fold, Path(out), stop_at)
        torch.save(model.state_dict(), Path(results) / f"rank{rank}.pt")
    except _Stop:
        pass
    finally:
        distributed.teardown()


def _spawn(problem, out: Path, results: Path, stop_at=None) -> list[dict]:
    results.mkdir(parents=True, exist_ok=True)
    recipe, mels, y, fold = problem
    mp.spawn(_worker, args=(2, _free_port(), recipe, mels, y, fold, str(out), str(results), stop_at), nprocs=2,
             join=True)
    return [torch.load(results / f"rank{r}.pt", weights_only=True) for r in range(2)] if stop_at is None else []


@pytest.fixture(scope="module")
def problem(data):
    from avemo.training.data import labels_of, load_samples, make_folds, voice_logmels

    recipe = parse_recipe(RECIPE)
    samples = load_samples(recipe)
    (fold,) = make_folds(recipe, samples)
    return recipe, voice_logmels(samples, recipe.features), labels_of(samples), fold


@pytest.fixture(scope="module")
def runs(problem, tmp_path_factory):
    """One process; and 2 processes interrupted when epoch 2 starts, then resumed (``torchrun`` started again)."""
    root = tmp_path_factory.mktemp("ddp")
    torch.set_num_threads(1)
    onednn, torch.backends.mkldnn.enabled = torch.backends.mkldnn.enabled, False  # as in the workers
    try:
        single = _fit(*problem, root / "single")
    finally:
        torch.backends.mkldnn.enabled = onednn
    _spawn(problem, root / "ddp", root / "cut-results", stop_at=2)
    cut_log = loop.read_jsonl(root / "ddp" / "log.jsonl")
    ranks = _spawn(problem, root / "ddp", root / "ddp-results")
    return root, single, ranks, cut_log


def test_both_ranks_end_with_identical_weights(runs):
    _, _, (r0, r1), _ = runs
    assert r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k  # parameters and batch-norm statistics, bit for bit


def _without_gradient(problem) -> set[str]:
    """The parameters whose gradient is zero in exact arithmetic: below 1e-12 in float64 on a training batch."""
    recipe, mels, y, fold = problem
    task = _task(recipe, mels, y, fold)
    model = task.build_model().double()
    x, target, labels = next(iter(task.batches(0, loop.generator(0), np.random.default_rng(0))))
    loss, _, _ = task.loss(model, (x.double(), target.double(), labels))
    loss.backward()
    return {k for k, p in model.named_parameters() if p.grad is None or float(p.grad.abs().max()) < 1e-12}


def test_loss_curve_and_weights_equal_one_process_with_the_same_global_batch(problem, runs):
    root, single, (r0, _), _ = runs
    one = loop.read_jsonl(root / "single" / "log.jsonl")
    two = loop.read_jsonl(root / "ddp" / "log.jsonl")
    assert [r["epoch"] for r in two] == [0, 1, 2] and [r["steps"] for r in two] == [r["steps"] for r in one]
    for a, b in zip(one, two):
        assert abs(a["train_loss"] - b["train_loss"]) < LOSS_ATOL
        assert abs(a["train_acc"] - b["train_acc"]) <= 1 / 24 + 1e-9  # at most one of the 24 examples, a near tie
        assert abs(a["lr_end"] - b["lr_end"]) < 1e-12
        assert abs(a["val_nll"] - b["val_nll"]) < VAL_NLL_ATOL
    assert one[-1]["train_loss"] < one[0]["train_loss"]  # it learns: the curve being compared is not flat
    free = _without_gradient(problem)
    assert len(free) <= 2  # a bias before batch norm, one before a softmax: nothing else escapes the check
    ref = dict(single.named_parameters())
    for k, v in r0.items():
        if k in ref and k not in free:
            torch.testing.assert_close(v, ref[k].detach(), atol=WEIGHT_ATOL, rtol=0, msg=k)


def test_only_rank_0_writes(runs):
    root, _, _, _ = runs
    assert sorted(p.name for p in (root / "ddp").iterdir()) == ["checkpoint.pt", "log.jsonl"]
    assert len(loop.read_jsonl(root / "ddp" / "log.jsonl")) == 3  # one line per epoch, not one per rank


def test_an_interrupted_run_resumes_where_it_stopped(runs):
    """The resumed run trains epoch 2 only, from rank 0's checkpoint (weights, Adam's moments, schedule) sent to
    both ranks: had either lost the optimizer state, the weights would be off one process's by ~lr (3e-3), far
    outside the tolerance checked above."""
    root, _, _, cut_log = runs
    assert [r["epoch"] for r in cut_log] == [0, 1]
    log = loop.read_jsonl(root / "ddp" / "log.jsonl")
    assert [r["epoch"] for r in log] == [0, 1, 2] and log[:2] == cut_log


def test_torchrun_avemo_train_runs_the_recipe_with_rank_0_writing(problem, tmp_path):
    import yaml

    recipe_path = tmp_path / "ddp_tiny.yaml"
    recipe_path.write_text(yaml.safe_dump({**RECIPE, "train": {**RECIPE["train"], "epochs": 1}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "avemo", "train", str(recipe_path), "--run-dir", str(tmp_path / "run"), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("trained ddp_tiny") == 1  # rank 0 reports, rank 1 stays quiet
    fold = tmp_path / "run" / "fold_0"
    with np.load(fold / "predictions.npz") as z:
        assert z["test_probs"].shape == (24, 8) and np.allclose(z["test_probs"].sum(1), 1, atol=1e-5)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["n_samples"] == 72
    assert len(loop.read_jsonl(fold / "log.jsonl")) == 1
