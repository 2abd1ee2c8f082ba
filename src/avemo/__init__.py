"""avemo: audio-visual emotion recognition — face, voice and fused emotions over time.

Heavy parts load on first use, so ``import avemo`` stays fast.
"""

from __future__ import annotations

from typing import Any

from avemo.errors import AvemoError, DatasetError, MediaError, ModelError
from avemo.labels import EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "AvemoError", "DatasetError", "MediaError", "ModelError", "list_models", "load"]


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Registered architectures and shipped bundles matching ``pattern``."""
    from avemo.models.registry import list_models as _list

    return _list(pattern, pretrained=pretrained)


def load(name: str) -> Any:
    """Load a shipped model bundle by name (see :func:`list_models` with ``pretrained=True``)."""
    from avemo.models.registry import load as _load

    return _load(name)
