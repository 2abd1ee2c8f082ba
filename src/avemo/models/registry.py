"""The model registry: architectures by name, each with an info record, and the shipped bundles.

Architectures register a builder (keyword arguments only) with :func:`register_model`, which records
the builder's module and a :class:`ModelInfo` (kind, modalities, the system it wraps, tiny settings
for tests). :func:`create_model` builds one with fresh weights, or with ``pretrained=True`` a bundle's
(``create_model("voice.ravdess8", pretrained=True)``: names of the form ``architecture.tag``, as in
timm). Bundles themselves (:mod:`avemo.models.bundles`) are read without torch; so is this module.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from avemo.errors import ModelError
from avemo.models.bundles import Bundle, list_bundles, load

__all__ = ["Bundle", "ModelInfo", "create_model", "list_bundles", "list_models", "load", "model_info",
           "register_model"]

#: What an architecture is: a unimodal classifier (``face``, ``voice``, ``text``), a ``fusion`` rule, or a
#: reviewed ``system`` (see :mod:`avemo.models.systems`).
KINDS = ("face", "voice", "text", "fusion", "system")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of an architecture besides its builder."""

    name: str
    module: str  #: where the builder is defined (its docstring is the model card of a system)
    kind: str
    modalities: tuple[str, ...] = ()
    wraps: bool = False  #: takes another registered system (``base``) with its ``base_kwargs``
    #: the smallest settings that still exercise every part: what tests build
    tiny: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


_BUILDERS: dict[str, Callable[..., Any]] = {}
_INFO: dict[str, ModelInfo] = {}
_PACKAGES = ("avemo.models.encoders", "avemo.models.fusion.calibrated", "avemo.models.fusion.reliability_torch",
             "avemo.models.systems")


def register_model(name: str, *, kind: str, modalities: tuple[str, ...] = (), wraps: bool = False,
                   tiny: Mapping[str, Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a builder under an architecture name, with its :class:`ModelInfo`."""
    if kind not in KINDS:
        raise ModelError(f"model {name!r}: kind must be one of {KINDS}, got {kind!r}")

    def wrap(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ModelError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        _INFO[name] = ModelInfo(name=name, module=builder.__module__, kind=kind, modalities=tuple(modalities),
                                wraps=wraps, tiny=MappingProxyType(dict(tiny or {})))
        return builder

    return wrap


def _import_all() -> None:
    """Importing the model packages runs their ``@register_model`` decorators (this imports torch)."""
    for package in _PACKAGES:
        importlib.import_module(package)


def list_models(pattern: str = "*", *, pretrained: bool = False, kind: str | None = None) -> list[str]:
    """Registered architectures and shipped bundles (``architecture.tag``) whose names match ``pattern``;
    ``pretrained=True``: bundles only; ``kind``: architectures of that kind (and their bundles)."""
    _import_all()
    names = set(list_bundles()) if pretrained else set(_BUILDERS) | set(list_bundles())
    if kind is not None:
        names = {n for n in names if (_INFO[n].kind if n in _INFO else load(n).kind) == kind}
    return sorted(n for n in names if fnmatch.fnmatch(n, pattern))


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered architecture."""
    _import_all()
    if name not in _INFO:
        raise ModelError(f"unknown model {name!r}; registered: {', '.join(sorted(_INFO)) or 'none'}")
    return _INFO[name]


def create_model(name: str, *, pretrained: bool = False, **kwargs: Any) -> Any:
    """A torch module: the architecture ``name`` with fresh weights, or with ``pretrained=True`` the bundle
    ``name`` (``architecture.tag``) with its weights, in eval mode."""
    if pretrained:
        if kwargs:
            raise ModelError(f"{name}: a pretrained bundle takes no constructor arguments (got {sorted(kwargs)})")
        return load(name).get_model(backend="torch")
    _import_all()
    if name not in _BUILDERS:
        hint = " (a bundle: pass pretrained=True)" if name in list_bundles() else ""
        raise ModelError(f"unknown model {name!r}{hint}; registered: {', '.join(sorted(_BUILDERS)) or 'none'}")
    return _BUILDERS[name](**kwargs)
