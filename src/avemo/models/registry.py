"""Model registry (architectures by name) and shipped bundles (``architecture.weights-tag``).

Architectures register a builder with :func:`register_model`; :func:`create_model` builds one with
fresh weights. A *bundle* is a folder under ``avemo/weights/<architecture>.<tag>/`` holding
``model.safetensors``, ``bundle.json`` (architecture, constructor arguments, labels, sample rate,
preprocessing settings) and ``MODEL_CARD.md``; :func:`load` returns it as a :class:`Bundle`, so no
caller can feed a model input it was not trained on. Weights are read with safetensors only.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from avemo.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
_BUILDERS: dict[str, Callable[..., torch.nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., torch.nn.Module]], Callable[..., torch.nn.Module]]:
    """Decorator: register a builder (keyword arguments only) under an architecture name."""

    def wrap(builder: Callable[..., torch.nn.Module]) -> Callable[..., torch.nn.Module]:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ModelError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return wrap


def _import_all() -> None:
    # importing the packages runs their @register_model decorators
    import avemo.models.encoders  # noqa: F401
    import avemo.models.fusion  # noqa: F401
    import avemo.models.systems  # noqa: F401


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered architectures (and ``architecture.tag`` bundles) whose names match ``pattern``."""
    _import_all()
    names = set(list_bundles()) if pretrained else set(_BUILDERS) | set(list_bundles())
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def create_model(name: str, **kwargs: Any) -> torch.nn.Module:
    """Build a registered architecture with fresh weights."""
    _import_all()
    if name not in _BUILDERS:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(sorted(_BUILDERS)) or 'none'}")
    return _BUILDERS[name](**kwargs)


def list_bundles() -> list[str]:
    """Names of the bundles shipped in the package."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "bundle.json").is_file())


@dataclass
class Bundle:
    """Weights with everything needed to use them: labels, sample rate, preprocessing, card."""

    name: str
    architecture: str
    model: torch.nn.Module
    labels: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def card(self) -> str:
        """The model card's text ('' when none ships)."""
        card = self.path / "MODEL_CARD.md" if self.path else None
        return card.read_text() if card and card.is_file() else ""


def save_bundle(folder: str | Path, *, architecture: str, model: torch.nn.Module, labels: tuple[str, ...],
                kwargs: dict[str, Any] | None = None, preprocessing: dict[str, Any] | None = None,
                meta: dict[str, Any] | None = None) -> Path:
    """Write a bundle folder (weights as safetensors, settings as JSON)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    spec = {"architecture": architecture, "kwargs": kwargs or {}, "labels": list(labels),
            "preprocessing": preprocessing or {}, "meta": meta or {}}
    (folder / "bundle.json").write_text(json.dumps(spec, indent=2) + "\n")
    return folder


def load_bundle(folder: str | Path) -> Bundle:
    """Read a bundle folder written by :func:`save_bundle`; the model is returned in eval mode."""
    folder = Path(folder)
    spec_path = folder / "bundle.json"
    if not spec_path.is_file():
        raise ModelError(f"{folder}: not a model bundle (no bundle.json)")
    spec = json.loads(spec_path.read_text())
    model = create_model(spec["architecture"], **spec["kwargs"])
    state = load_file(str(folder / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(f"{folder}: weights do not fit {spec['architecture']!r} "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    model.eval()
    return Bundle(name=folder.name, architecture=spec["architecture"], model=model,
                  labels=tuple(spec["labels"]), kwargs=spec["kwargs"],
                  preprocessing=spec["preprocessing"], meta=spec["meta"], path=folder)


def load(name: str) -> Bundle:
    """Load a shipped bundle by name (``architecture.tag``), or a bundle folder by path."""
    path = Path(name)
    if path.is_dir():
        return load_bundle(path)
    folder = WEIGHTS_DIR / name
    if not (folder / "bundle.json").is_file():
        raise ModelError(f"no bundle named {name!r}; shipped: {', '.join(list_bundles()) or 'none'}")
    return load_bundle(folder)
