"""Recipes: one YAML file per experiment in ``recipes/``, named after what it runs.

A recipe names the corpus, the protocol, the features, the model and its keyword arguments, the
optimiser, the number of epochs and the seed. ``kind`` says which runner executes it:

* ``voice``    — a neural voice model on cached log-mels (:mod:`avemo.training.voice`);
* ``features`` — a classical classifier on clip-level features (facial action units, eGeMAPS
  functionals, librosa functionals), hyper-parameters chosen by grouped inner CV
  (:mod:`avemo.training.classic`);
* ``fusion``   — audio-visual fusion of a finished voice run with an action-unit model
  (:mod:`avemo.training.fusion`);
* ``system``   — a reviewed published system (:mod:`avemo.models.systems`) trained end to end with its
  own loss (:mod:`avemo.training.systems`).

Runs live in ``runs/<recipe name>/`` unless ``--run-dir`` says otherwise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avemo.errors import AvemoError

KINDS = ("voice", "features", "fusion", "system")
PROTOCOLS = ("ravdess6", "holdout")


class RecipeError(AvemoError):
    """A recipe file is missing or malformed."""


@dataclass
class Recipe:
    """A parsed recipe; ``raw`` is the YAML as read, the other fields its validated essentials."""

    name: str
    kind: str
    corpus: str
    protocol: dict[str, Any]
    seed: int
    path: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def section(self, key: str) -> dict[str, Any]:
        """A sub-dictionary of the recipe (empty when absent), as a copy."""
        value = self.raw.get(key) or {}
        if not isinstance(value, dict):
            raise RecipeError(f"{self.path}: {key!r} must be a mapping")
        return copy.deepcopy(value)

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.raw.get(key, default))

    def default_run_dir(self) -> Path:
        return Path("runs") / self.name

    @property
    def command_line(self) -> str:
        """How this recipe's results are produced, for reports."""
        where = self.path.as_posix() if self.path else f"recipes/{self.name}.yaml"
        return f"avemo train {where} && avemo evaluate {where} --publish"


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and check a recipe; ``overrides`` (dotted keys, e.g. ``{"epochs": 1}``) replace values."""
    path = Path(path)
    if not path.is_file():
        candidate = Path("recipes") / f"{path.name}.yaml"
        if candidate.is_file():
            path = candidate
        else:
            raise RecipeError(f"{path}: recipe not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    raw.setdefault("name", path.stem)
    kind = raw.get("kind")
    if kind not in KINDS:
        raise RecipeError(f"{path}: kind must be one of {KINDS}, got {kind!r}")
    protocol = raw.get("protocol") or {"name": "ravdess6"}
    if isinstance(protocol, str):
        protocol = {"name": protocol}
    if protocol.get("name") not in PROTOCOLS:
        raise RecipeError(f"{path}: protocol must be one of {PROTOCOLS}, got {protocol.get('name')!r}")
    raw["protocol"] = protocol
    return Recipe(name=str(raw["name"]), kind=kind, corpus=str(raw.get("corpus", "ravdess")),
                  protocol=protocol, seed=int(raw.get("seed", 0)), path=path, raw=raw)
