"""Adversarial perturbations of either modality's input, to measure how vulnerable a system is.

- :func:`fgsm`: the fast gradient sign method (Goodfellow et al. 2015), one step of size ``epsilon``.
- :func:`pgd`: projected gradient descent (Madry et al. 2018), ``steps`` steps of size ``alpha``
  inside the L-infinity ball of radius ``epsilon``, from a random start.
- :func:`pgd_joint`: PGD on several modalities at once, each in its own ball (an audio-visual attack in the
  spirit of DARE, Mishra et al. 2021); ``epsilon`` may be a tensor broadcast per example (a budget relative to
  each example's signal, e.g. an SNR).
- :func:`vulnerability`: accuracy and loss of a system under an attack at several ``epsilon``.

Both attacks take a system following the forward convention (keyword inputs, ``out["logits"]``),
a dict of inputs and integer targets, and perturb only ``modality`` (``"audio"``: log-mel values,
unbounded; ``"video"``: face crops, clamped to [0, 1]). The model is put in eval mode while
attacking and restored afterwards; its parameters receive no gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["fgsm", "pgd", "pgd_joint", "vulnerability"]

#: Valid value range per modality (None: unbounded).
BOUNDS: dict[str, tuple[float, float] | None] = {"audio": None, "video": (0.0, 1.0)}


def _loss(out: dict[str, Any], target: torch.Tensor) -> torch.Tensor:
    # cross-entropy on the logits; for systems that return log-probabilities this is their NLL
    return F.cross_entropy(out["logits"], target)


def _clamp(x: torch.Tensor, modality: str) -> torch.Tensor:
    b = BOUNDS.get(modality)
    return x if b is None else x.clamp(*b)


def _grad(model: nn.Module, inputs: Mapping[str, Any], target: torch.Tensor, modality: str, x: torch.Tensor,
          loss_fn: Callable[[dict[str, Any], torch.Tensor], torch.Tensor]) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    loss = loss_fn(model(**{**inputs, modality: x}), target)
    (g,) = torch.autograd.grad(loss, x)
    return g


class _Eval:
    """Eval mode and frozen parameters for the duration of an attack."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.mode = self.model.training
        self.flags = [p.requires_grad for p in self.model.parameters()]
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.mode)
        for p, f in zip(self.model.parameters(), self.flags, strict=True):
            p.requires_grad_(f)


def fgsm(model: nn.Module, inputs: Mapping[str, Any], target: torch.Tensor, *, modality: str, epsilon: float,
         loss_fn: Callable[[dict[str, Any], torch.Tensor], torch.Tensor] = _loss) -> dict[str, Any]:
    """The inputs with ``modality`` moved by ``epsilon * sign(grad loss)``."""
    if inputs.get(modality) is None:
        raise ValueError(f"no {modality!r} input to perturb")
    with _Eval(model):
        x = inputs[modality]
        adv = _clamp(x + epsilon * _grad(model, inputs, target, modality, x, loss_fn).sign(), modality)
    return {**inputs, modality: adv.detach()}


def pgd(model: nn.Module, inputs: Mapping[str, Any], target: torch.Tensor, *, modality: str, epsilon: float,
        alpha: float | None = None, steps: int = 10, random_start: bool = True, seed: int = 0,
        loss_fn: Callable[[dict[str, Any], torch.Tensor], torch.Tensor] = _loss) -> dict[str, Any]:
    """The inputs with ``modality`` moved by projected gradient ascent on the loss (L-infinity ball)."""
    if inputs.get(modality) is None:
        raise ValueError(f"no {modality!r} input to perturb")
    alpha = alpha if alpha is not None else 2.5 * epsilon / steps
    x0 = inputs[modality].detach()
    with _Eval(model):
        adv = x0.clone()
        if random_start:
            gen = torch.Generator().manual_seed(seed)
            adv = _clamp(adv + (torch.rand(adv.shape, generator=gen) * 2 - 1).to(adv) * epsilon, modality)
        for _ in range(steps):
            adv = adv + alpha * _grad(model, inputs, target, modality, adv, loss_fn).sign()
            adv = _clamp(x0 + (adv - x0).clamp(-epsilon, epsilon), modality)
    return {**inputs, modality: adv.detach()}


def pgd_joint(model: nn.Module, inputs: Mapping[str, Any], target: torch.Tensor, *,
              epsilons: Mapping[str, float | torch.Tensor], steps: int = 10, random_start: bool = True, seed: int = 0,
              loss_fn: Callable[[dict[str, Any], torch.Tensor], torch.Tensor] = _loss) -> dict[str, Any]:
    """The inputs with every modality of ``epsilons`` moved together by projected gradient ascent on the loss,
    each inside its own L-infinity ball (steps of ``2.5 * epsilon / steps``, as :func:`pgd`)."""
    for m in epsilons:
        if inputs.get(m) is None:
            raise ValueError(f"no {m!r} input to perturb")
    x0 = {m: inputs[m].detach() for m in epsilons}
    with _Eval(model):
        adv = {m: x.clone() for m, x in x0.items()}
        if random_start:
            gen = torch.Generator().manual_seed(seed)
            adv = {m: _clamp(x + (torch.rand(x.shape, generator=gen) * 2 - 1).to(x) * epsilons[m], m)
                   for m, x in adv.items()}
        for _ in range(steps):
            xs = {m: a.detach().requires_grad_(True) for m, a in adv.items()}
            loss = loss_fn(model(**{**inputs, **xs}), target)
            grads = torch.autograd.grad(loss, list(xs.values()))
            for (m, a), g in zip(xs.items(), grads, strict=True):
                eps = epsilons[m]
                moved = a.detach() + (2.5 * eps / steps) * g.sign()
                adv[m] = _clamp(x0[m] + torch.clamp(moved - x0[m], -eps, eps), m)
    return {**inputs, **{m: a.detach() for m, a in adv.items()}}


def vulnerability(model: nn.Module, inputs: Mapping[str, Any], target: torch.Tensor, *, modality: str,
                  epsilons: Iterable[float], attack: str = "fgsm", **kw: Any) -> list[dict[str, float]]:
    """Accuracy and loss under ``attack`` ("fgsm" or "pgd") for each ``epsilon`` (0 = clean)."""
    fn = {"fgsm": fgsm, "pgd": pgd}[attack]
    rows = []
    for eps in epsilons:
        x = dict(inputs) if eps == 0 else fn(model, inputs, target, modality=modality, epsilon=eps, **kw)
        with _Eval(model), torch.no_grad():
            out = model(**x)
            rows.append({"epsilon": float(eps), "accuracy": float((out["logits"].argmax(-1) == target).float().mean()),
                         "loss": float(_loss(out, target))})
    return rows
