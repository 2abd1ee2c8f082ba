"""One training loop for every neural kind: epochs, schedule, checkpoints, resumption, logs, selection.

What differs between kinds (the model, the batches, the loss, the validation score) is a
:class:`TrainingTask`; :class:`Trainer` owns the rest, configured by a recipe's ``optim`` and ``train``
sections (:mod:`avemo.training.recipe`):

- optimiser: AdamW, or SGD with Nesterov momentum and no weight decay on biases and norms;
- schedule: linear warm-up, then cosine decay to zero; with a time budget the schedule's progress is the
  larger of the step and elapsed-time fractions, so a slow machine still anneals within the budget;
- bf16 autocast on CPUs that compute bfloat16 natively (float32 elsewhere; the task keeps its loss in float32);
- after every epoch: a line in ``log.jsonl`` and a resumable ``checkpoint.pt`` (plain tensors, read with
  ``weights_only=True``); validation every ``val_every`` epochs, ``best.pt`` when it improves, early
  stopping after ``patience`` validations without improvement;
- optionally an exponential moving average of the weights (``train.ema``), which is what is validated,
  selected and returned; and a start from earlier weights (``train.init``: a file or a bundle).

Randomness per epoch is drawn from ``(seed..., epoch)``, so a resumed run draws exactly what an
uninterrupted one would have.

Under ``torchrun`` (several processes) the same loop runs data-parallel: every rank draws the global batch and
trains on its share in DistributedDataParallel, batch norm over the global batch, only rank 0 writing
(:mod:`avemo.training.distributed`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avemo.training import distributed, loop
from avemo.training.recipe import Optim, RecipeError, Train


class TrainingTask:
    """What a kind supplies to the :class:`Trainer` (override every method; ``validate`` is optional)."""

    #: the key of :meth:`validate`'s result that selection and early stopping follow (higher is better)
    metric: str = "val_acc"

    def build_model(self) -> torch.nn.Module:
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def batches(self, epoch: int, gen: torch.Generator, rng: np.random.Generator) -> Iterator[Any]:
        """The epoch's batches (at most :meth:`steps_per_epoch`), drawn with ``gen`` and ``rng`` only."""
        raise NotImplementedError

    def loss(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, int, int]:
        """The batch's loss (float32, the mean over its examples), and how many of its examples the model got
        right, of how many."""
        raise NotImplementedError

    def shard(self, batch: Any, rank: int, world: int) -> tuple[Any, int, int]:
        """Under several processes: this rank's share of a global batch, its size and the global size
        (default: :func:`avemo.training.distributed.shard`, contiguous rows of every tensor)."""
        return distributed.shard(batch, rank, world)

    def validate(self, model: torch.nn.Module) -> dict[str, float] | None:
        """Scores on the validation data (None: the task has none)."""
        return None


def initial_weights(init: str) -> dict[str, torch.Tensor]:
    """The state dict ``train.init`` names: a file written by ``torch.save`` (e.g. a run's ``best.pt``), or a
    bundle name or folder (its torch module's weights)."""
    path = Path(init)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    from avemo.errors import ModelError
    from avemo.models.bundles import load

    try:
        return {k: v.float() if v.is_floating_point() else v for k, v in
                load(init).get_model("torch").state_dict().items()}
    except ModelError as err:
        raise RecipeError(f"train.init: {init} is neither a weights file nor a bundle ({err})") from None


class _Ema:
    """An exponential moving average of a model's weights and buffers (decay warmed up over the first steps)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        import copy

        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = float(decay)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for pe, pm in zip(self.model.parameters(), model.parameters(), strict=True):
            pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        for be, bm in zip(self.model.buffers(), model.buffers(), strict=True):
            be.copy_(bm)


def lr_at(progress: float, base: float, warmup: float, step_fraction: float) -> float:
    """Learning rate at ``progress`` (0..1) of the schedule: linear warm-up over the first ``warmup`` of it,
    then cosine decay to 0. ``step_fraction`` is one step's share (the first step gets a non-zero rate)."""
    if warmup > 0 and progress < warmup:
        return base * min(1.0, (progress + step_fraction) / warmup)
    t = min(1.0, (progress - warmup) / max(1e-8, 1.0 - warmup))
    return 0.5 * base * (1 + math.cos(math.pi * t))


def bf16_supported() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); elsewhere autocast to bfloat16 is
    emulated and many times slower than float32, so the Trainer runs float32 there."""
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def make_optimizer(model: torch.nn.Module, optim: Optim) -> torch.optim.Optimizer:
    if optim.name == "sgd":
        decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
        return torch.optim.SGD([{"params": decay, "weight_decay": optim.weight_decay},
                                {"params": no_decay, "weight_decay": 0.0}], lr=optim.lr, momentum=optim.momentum,
                               nesterov=optim.nesterov)
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)


class Trainer:
    """Trains ``task``'s model into ``out_dir`` (resuming what is there); see the module docstring.

    ``seed`` (integers, e.g. recipe seed and fold) seeds the model's initialisation and every epoch's
    draws; ``log_extra`` is added to every log line; ``bar`` is a :func:`avemo.training.loop.progress`.
    """

    def __init__(self, task: TrainingTask, *, optim: Optim, train: Train, out_dir: Path, seed: Sequence[int],
                 log_extra: dict[str, Any] | None = None, bar: Any = None, label: str = "epochs",
                 log: Any = None) -> None:
        self.task, self.optim_cfg, self.cfg = task, optim, train
        self.out_dir = Path(out_dir)
        self.seed = tuple(int(s) for s in seed)
        self.log_extra = dict(log_extra or {})
        self.bar, self.label, self.log = bar, label, log
        self.checkpoint, self.best_path = self.out_dir / "checkpoint.pt", self.out_dir / "best.pt"
        self.log_path = self.out_dir / "log.jsonl"

    def fit(self) -> torch.nn.Module:
        """Train (or resume, or reload a finished run); returns the model in eval mode (the best validated
        epoch's weights with ``select: best``)."""
        cfg = self.cfg
        world = distributed.world_size()
        dev = distributed.setup() if world > 1 else torch.device("cpu")
        rank, main = distributed.rank(), distributed.is_main()
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        else:  # only rank 0 reports
            self.bar = self.log = None
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        torch.manual_seed(hash(self.seed) % (2**31))
        model = self.task.build_model()
        if dev.type != "cpu":
            model = model.to(dev)
        optimizer = make_optimizer(model, self.optim_cfg)
        state = {"epoch": 0, "step": 0, "elapsed": 0.0, "best": None, "best_epoch": None, "stale": 0, "done": False}
        saved = loop.load_checkpoint(self.checkpoint) if main else None
        if world > 1:  # rank 0's checkpoint, if any, on every rank
            saved = distributed.broadcast(saved)
        if saved is not None:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optim"])
            state.update(json.loads(saved["state"]))
        elif cfg.init and main:  # (DDP hands rank 0's weights to the others)
            model.load_state_dict(initial_weights(cfg.init))
        if cfg.ema and world > 1:
            raise RecipeError("train.ema is not supported with several processes (yet): train it in one")
        ema = _Ema(model, cfg.ema) if cfg.ema else None
        if ema is not None and saved is not None and "ema" in saved:
            ema.model.load_state_dict(saved["ema"])
        net = distributed.wrap(model, dev) if world > 1 else model
        steps = max(1, self.task.steps_per_epoch())
        total = cfg.epochs * steps
        warmup = min(1.0, cfg.warmup_epochs / max(1, cfg.epochs))
        budget = cfg.time_budget_min * 60.0 if cfg.time_budget_min else None
        bf16 = cfg.bf16 and (dev.type != "cpu" or bf16_supported())
        if cfg.bf16 and not bf16 and self.log is not None:
            self.log("train.bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX); training in float32")

        def progress() -> float:
            p = state["step"] / total
            return max(p, state["elapsed"] / budget) if budget else p

        task_id = (self.bar.add_task(self.label, total=cfg.epochs, completed=state["epoch"])
                   if self.bar is not None else None)
        while not state["done"] and state["epoch"] < cfg.epochs and progress() < 1.0:
            epoch = state["epoch"]
            timer = loop.Timer()
            model.train()
            gen = loop.generator(*self.seed, epoch)
            rng = np.random.default_rng([*self.seed, epoch])
            losses, correct, seen, lr = [], 0, 0, 0.0
            for batch in self.task.batches(epoch, gen, rng):
                t_step = time.perf_counter()
                weight = 1.0
                if world > 1:  # this rank's share; the loss weighted so DDP's mean gradient is the global one
                    batch, n_local, n_global = self.task.shard(batch, rank, world)
                    if n_global < world:
                        continue  # a share would be empty: skipped on every rank alike
                    batch, weight = distributed.to_device(batch, dev), n_local * world / n_global
                lr = lr_at(progress(), self.optim_cfg.lr, warmup, 1.0 / total)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                    loss, right, n = self.task.loss(net, batch)
                optimizer.zero_grad(set_to_none=True)
                (loss * weight if world > 1 else loss).backward()
                optimizer.step()
                if ema is not None:
                    ema.update(model, state["step"])
                step_loss, step_s = float(loss.detach()), time.perf_counter() - t_step
                if world > 1:  # the global batch's mean loss and counts; one step time for every rank
                    total_loss, right, n, step_s = distributed.all_sum([step_loss * n, right, n, step_s])
                    step_loss, right, n, step_s = total_loss / n, int(right), int(n), step_s / world
                losses.append(step_loss)
                correct += right
                seen += n
                state["step"] += 1
                state["elapsed"] += step_s
                if progress() >= 1.0:
                    break
            state["epoch"] = epoch + 1
            record: dict[str, Any] = {**self.log_extra, "epoch": epoch, "steps": state["step"],
                                      "train_loss": float(np.mean(losses)) if losses else float("nan"),
                                      "train_acc": correct / max(1, seen), "lr_end": lr,
                                      "seconds": round(timer.seconds, 2), "progress": round(progress(), 4)}
            last = state["epoch"] >= cfg.epochs or progress() >= 1.0
            if self._validate_now(state["epoch"], progress(), last):
                t_val = loop.Timer()
                scores = self._validate(ema.model if ema is not None else model, dev) if main else None
                val_s = t_val.seconds
                if world > 1:  # rank 0's scores and time on every rank: the same selection and stopping
                    scores, val_s = distributed.broadcast((scores, val_s))
                state["elapsed"] += val_s  # the time budget covers validation too
                if scores:
                    record.update(scores)
                    self._track_best(ema.model if ema is not None else model, scores, state, record)
            record["elapsed_min"] = round(state["elapsed"] / 60, 3)
            record["progress"] = round(progress(), 4)  # after validation, which the time budget covers too
            if main:
                loop.append_jsonl(self.log_path, record)
                loop.save_checkpoint(self.checkpoint, {"model": model.state_dict(), "optim": optimizer.state_dict(),
                                                       "state": json.dumps(state),
                                                       **({"ema": ema.model.state_dict()} if ema is not None else {})})
            if self.bar is not None:
                self.bar.update(task_id, advance=1)
                self.bar.console.log(_line(record))
            elif self.log is not None:
                self.log(_line(record))
        if world > 1:
            distributed.restore_batchnorm(model)
        if ema is not None:
            model = ema.model
        if cfg.select == "best":
            best = (torch.load(self.best_path, map_location="cpu", weights_only=True)
                    if main and self.best_path.is_file() else None)
            best = distributed.broadcast(best) if world > 1 else best
            if best is not None:
                model.load_state_dict(best)
        model.eval()
        return model.cpu() if dev.type != "cpu" else model

    def _validate(self, model: torch.nn.Module, dev: torch.device) -> dict[str, float] | None:
        """The task's scores (on a CPU copy when the model trains on a GPU: tasks validate on the CPU)."""
        if dev.type == "cpu":
            return self.task.validate(model)
        import copy

        return self.task.validate(copy.deepcopy(model).cpu())

    def _validate_now(self, epochs_done: int, progress: float, last: bool) -> bool:
        cfg = self.cfg
        if last:
            return True
        if cfg.dense_after is not None and progress >= cfg.dense_after:
            return True
        return bool(cfg.val_every) and epochs_done % cfg.val_every == 0

    def _track_best(self, model: torch.nn.Module, scores: dict[str, float], state: dict[str, Any],
                    record: dict[str, Any]) -> None:
        value = scores.get(self.task.metric)
        if value is None or value != value:
            return
        if state["best"] is None or value > state["best"]:
            state.update(best=float(value), best_epoch=record["epoch"], stale=0)
            if self.cfg.select == "best" and distributed.is_main():
                torch.save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, self.best_path)
        else:
            state["stale"] += 1
            if self.cfg.patience is not None and state["stale"] >= self.cfg.patience:
                state["done"] = True
        record["best"] = state["best"]
        record["best_epoch"] = state["best_epoch"]


def _line(record: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
