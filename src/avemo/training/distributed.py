"""Data-parallel training over several processes: PyTorch DDP as ``torchrun`` starts it (gloo on CPUs, NCCL on GPUs).

``torchrun --nproc_per_node 2 -m avemo train RECIPE`` starts two processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set; :func:`setup` joins them into one process group and
the :class:`~avemo.training.trainer.Trainer` then:

- draws every global batch on every rank from the shared seed (so the draws are one process's) and keeps
  its share (:func:`shard`: contiguous rows), the loss weighted so that DDP's gradient average is exactly
  the gradient of the global batch's mean loss, whatever the shares' sizes;
- normalises batch-norm layers over the global batch (:class:`CrossRankBatchNorm`, an all-reduce of the
  sums; torch's own ``SyncBatchNorm`` runs on GPUs only), so the model sees what one process would;
- sums the loss and accuracy counts over ranks for its log, averages the step times (so a time budget
  ends on every rank at the same step), validates on rank 0 and sends the scores to the others;
- lets only rank 0 write logs, checkpoints and ``best.pt``; a resumed run reads them on rank 0 and sends
  them to the others, so only rank 0's node needs the run folder.

What stays per rank: dropout masks and any loss that couples examples (triplets, batch statistics in a
loss) see only the rank's share, so such runs agree with one process in distribution, not step by step.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["CrossRankBatchNorm", "broadcast", "device", "is_main", "rank", "setup", "shard", "teardown", "world_size"]


def world_size() -> int:
    """Processes taking part (1 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 outside ``torchrun``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes (rank 0)."""
    return rank() == 0


def device() -> torch.device:
    """This rank's device: its GPU under NCCL, else the CPU."""
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def setup() -> torch.device:
    """Join the process group ``torchrun`` describes (NCCL when this machine has GPUs, else gloo), once; returns
    this rank's device. A no-op in a single process."""
    if world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return device()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return device()


def teardown() -> None:
    """Leave the process group (at the end of a ``torchrun`` command). A finished DDP wrapper sits in reference
    cycles (its reducer's hooks) that still hold the group; they are collected first, so that gloo's threads are
    not left to the interpreter's exit (where they abort the process: "terminate called without an active
    exception")."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def _rows(batch: Any) -> int | None:
    """The number of examples of a batch: the first dimension of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, Sequence) and not isinstance(batch, str | bytes):
        for item in batch:
            n = _rows(item)
            if n is not None:
                return n
    return None


def _slice(batch: Any, start: int, stop: int, n: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[start:stop] if batch.dim() and batch.shape[0] == n else batch
    if isinstance(batch, Mapping):
        return {k: _slice(v, start, stop, n) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(_slice(v, start, stop, n) for v in batch)
    return batch


def shard(batch: Any, rank_: int, world: int) -> tuple[Any, int, int]:
    """This rank's contiguous share of a global batch (tensors, or tuples, lists and dicts of them, sliced along
    their first dimension where it is the batch's length), its size and the global batch's size."""
    n = _rows(batch)
    if n is None:
        raise ValueError("cannot shard a batch without a tensor whose first dimension counts its examples")
    bounds = [round(k * n / world) for k in range(world + 1)]
    start, stop = bounds[rank_], bounds[rank_ + 1]
    return _slice(batch, start, stop, n), stop - start, n


def to_device(batch: Any, dev: torch.device) -> Any:
    """A batch with every tensor moved to ``dev`` (nothing to do on the CPU)."""
    if dev.type == "cpu":
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(dev, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, dev) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(v, dev) for v in batch)
    return batch


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; for state dicts, scores and the like)."""
    if world_size() <= 1:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0, device=device() if device().type == "cuda" else None)
    return box[0]


def all_sum(values: Sequence[float]) -> list[float]:
    """The element-wise sum of ``values`` over ranks (float64)."""
    t = torch.tensor(list(values), dtype=torch.float64, device=device())
    dist.all_reduce(t)
    return t.cpu().tolist()


class _SumOverRanks(torch.autograd.Function):
    """An all-reduce (sum) whose gradient is the all-reduce (sum) of the gradients: each rank's loss depends on
    every rank's inputs through the summed statistics."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class CrossRankBatchNorm(_BatchNorm):
    """Batch norm whose training statistics are those of the global batch: each rank's per-channel sums and
    sums of squares (float64) are summed over ranks with a differentiable all-reduce. In eval mode, and in a
    single process, it is the plain batch norm. Same parameters, buffers and state-dict keys as the layer it
    replaces (:func:`convert_batchnorm`)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1 and dist.is_initialized()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        xd = x.double()
        count = torch.tensor([x.numel() / max(1, x.shape[1])], dtype=torch.float64, device=x.device)
        stats = _SumOverRanks.apply(torch.cat([xd.sum(dims), (xd * xd).sum(dims), count]))
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                unbiased = var * (n / (n - 1).clamp_min(1.0))
                self.running_mean.mul_(1 - factor).add_(factor * mean.to(self.running_mean.dtype))
                self.running_var.mul_(1 - factor).add_(factor * unbiased.to(self.running_var.dtype))
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xd - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        y = y.to(x.dtype)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


_PLAIN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _swap(module: nn.Module, new: nn.Module, old: nn.Module) -> nn.Module:
    if old.affine:
        new.weight, new.bias = old.weight, old.bias
    if old.track_running_stats:
        new.running_mean, new.running_var = old.running_mean, old.running_var
        new.num_batches_tracked = old.num_batches_tracked
    new.train(old.training)
    return new


def convert_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every plain ``BatchNorm1d/2d/3d`` replaced by a :class:`CrossRankBatchNorm` sharing its
    parameters and buffers (the original class is kept for :func:`restore_batchnorm`)."""
    if isinstance(model, _PLAIN) and type(model) in _PLAIN:
        new = CrossRankBatchNorm(model.num_features, model.eps, model.momentum, model.affine,
                                 model.track_running_stats)
        new._plain_class = type(model)
        return _swap(model, new, model)
    for name, child in list(model.named_children()):
        setattr(model, name, convert_batchnorm(child))
    return model


def restore_batchnorm(model: nn.Module) -> nn.Module:
    """Undo :func:`convert_batchnorm` (the plain layers back, with the trained parameters and statistics)."""
    if isinstance(model, CrossRankBatchNorm):
        cls = getattr(model, "_plain_class", nn.BatchNorm2d)
        new = cls(model.num_features, model.eps, model.momentum, model.affine, model.track_running_stats)
        return _swap(model, new, model)
    for name, child in list(model.named_children()):
        setattr(model, name, restore_batchnorm(child))
    return model


class DataParallel(nn.parallel.DistributedDataParallel):
    """DDP that also lends its module's other methods (``model.loss(...)``, ``model.embedding(...)``) to tasks."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model: nn.Module, dev: torch.device) -> nn.Module:
    """The model in :class:`DataParallel` with cross-rank batch norm (its parameters are rank 0's from here on)."""
    convert_batchnorm(model)
    return DataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
