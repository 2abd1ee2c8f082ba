"""Recipes: one YAML file per experiment in ``recipes/``, named after what it runs, with typed sections.

A recipe names the corpus, the protocol, the features, the model and its keyword arguments, the
optimiser, the training schedule and the seed. ``kind`` says which runner executes it:

* ``voice``    — a neural voice model on cached log-mels (:mod:`avemo.training.voice`);
* ``face``     — the face expression network on FER-2013's own holdout split (:mod:`avemo.training.fer`);
* ``system``   — a reviewed published system (:mod:`avemo.models.systems`) trained end to end with its
  own loss (:mod:`avemo.training.systems`);
* ``features`` — a classical classifier on clip-level features (facial action units, eGeMAPS
  functionals, librosa functionals), hyper-parameters chosen by grouped inner CV
  (:mod:`avemo.training.classic`);
* ``fusion``   — audio-visual fusion of a finished voice run with an action-unit model
  (:mod:`avemo.training.fusion`).

Every section is a frozen dataclass below: its defaults are the defaults (the one place they live),
and a key that is not a field is refused with a :class:`RecipeError` naming the file and the key. The
neural kinds train through one :class:`avemo.training.trainer.Trainer` (``optim`` and ``train``).
Runs live in ``runs/<recipe name>/`` unless ``--run-dir`` says otherwise.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from avemo.errors import RecipeError

__all__ = ["KINDS", "Recipe", "RecipeError", "load_recipe", "parse_recipe"]

KINDS = ("voice", "face", "system", "features", "fusion")
PROTOCOLS = ("ravdess6", "holdout", "fer2013")


@dataclass(frozen=True)
class Protocol:
    """How samples are split. ``ravdess6``: 6 folds of 4 actors; ``holdout``: ``test_speakers`` held out;
    ``fer2013``: the corpus's own Training / PublicTest / PrivateTest. ``val_speakers`` training speakers
    of each fold form the inner validation set (chosen by ``split_seed``)."""

    name: str = "ravdess6"
    val_speakers: int = 4
    split_seed: int = 0
    test_speakers: tuple[int, ...] = ()


@dataclass(frozen=True)
class Data:
    """Where the corpus is and which part of it: ``root`` (default: its folder under ``$AVEMO_DATA``),
    only ``speakers`` (actor numbers), at most ``per_speaker`` samples each."""

    root: str | None = None
    speakers: tuple[int, ...] = ()
    per_speaker: int | None = None


@dataclass(frozen=True)
class Features:
    """Inputs of the neural kinds and of ``features`` recipes."""

    mel: Mapping[str, Any] = field(default_factory=dict)  #: :class:`avemo.audio.MelConfig` fields
    trim_db: float = 0.0  #: trim leading/trailing silence this far under the peak (0: none)
    window_s: float = 3.0  #: training crops and inference windows
    eval_hop_s: float = 1.0  #: test-time averaging over windows this far apart
    faces: Mapping[str, Any] = field(default_factory=dict)  #: systems: face crops (fps, size, grey, align)
    au_csv: str | None = None  #: systems with au35 inputs: the action-unit table (default: the shared one)
    set: str | None = None  #: features recipes: au35, egemaps or librosa


@dataclass(frozen=True)
class Inputs:
    """What a system sees (:mod:`avemo.training.systems`); None: the default for its modalities."""

    audio: str | None = None
    video: str | None = None
    au_hidden: int = 64


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture and its constructor arguments."""

    name: str = ""
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Optim:
    """The optimiser: ``adamw`` (``weight_decay`` decoupled) or ``sgd`` (``momentum``, ``nesterov``; no
    decay on biases and norms). ``label_smoothing`` goes to the loss."""

    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    label_smoothing: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True


@dataclass(frozen=True)
class Train:
    """The schedule of :class:`avemo.training.trainer.Trainer`: linear warm-up over ``warmup_epochs`` then
    cosine decay to 0 over ``epochs``; with ``time_budget_min`` the schedule's progress is the larger of
    the step and elapsed-time fractions, so a slow machine still anneals within the budget. Validation
    every ``val_every`` epochs (every epoch once ``dense_after`` of the schedule has passed); with
    ``select: best`` the best validation epoch is kept, and ``patience`` stops after that many
    validations without improvement. ``init`` starts from earlier weights (a warm restart)."""

    epochs: int = 40
    warmup_epochs: float = 1.0
    time_budget_min: float | None = None
    val_every: int = 0  #: 0: only after the last epoch
    dense_after: float | None = None
    select: str = "last"
    patience: int | None = None
    bf16: bool = False
    threads: int | None = None  #: torch threads (None: the command's ``--threads``)
    init: str | None = None  #: earlier weights: a state-dict file, or a bundle name / folder
    ema: float | None = None  #: keep an exponential moving average of the weights (this decay); it is validated,
    #: selected and returned instead of the raw weights


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation; everything off by default. Voice and systems: ``specaugment``
    (``freq``, ``time``, ``n``), ``mixup`` (Beta alpha), ``gain_db`` ([low, high]). Faces: one affine
    warp (``rotate`` degrees, ``scale`` range, ``shift`` pixels, ``flip``) to ``crop`` from ``size``,
    ``brightness``/``contrast`` jitter, random erasing (``erase_p``, ``erase_area`` range)."""

    specaugment: Mapping[str, int] = field(default_factory=dict)
    mixup: float = 0.0
    gain_db: tuple[float, float] | None = None
    size: int = 48
    crop: int = 44
    rotate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    flip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    erase_p: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)
    video_p: float = 0.0  #: faces: a camera degradation per face (blur, resampling, noise, low light, JPEG)
    mouth_p: float = 0.0  #: faces: the lower face greyed (a talking mouth says little of the emotion)
    cutmix_p: float = 0.0  #: faces: CutMix on a batch with this probability (Beta(cutmix_alpha) areas)
    cutmix_alpha: float = 1.0


@dataclass(frozen=True)
class Eval:
    """Face recipes: the test-time views to choose from on the selection split."""

    tta: tuple[str, ...] = ("none", "flip", "tencrop")


@dataclass(frozen=True)
class Ship:
    """The shipped bundle a recipe makes (``avemo train --final``, or a face recipe's end): its name,
    the other recipes whose final models join it as ensemble members, the recipe whose results hold the
    ensemble's cross-validation, and ``write`` (False: leave the shipped bundle alone)."""

    bundle: str | None = None
    members: tuple[str, ...] = ()
    ensemble_results: str | None = None
    write: bool = True


@dataclass(frozen=True)
class FusionSection:
    """Fusion recipes: the finished voice runs (ensembled) and the grids of the fitted parameters."""

    voice_runs: tuple[str, ...] = ("runs/voice_ravdess",)
    weight_grid: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(21))
    stack_C: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Candidate:
    """A classical classifier and its parameter grid (``features`` and ``fusion`` recipes)."""

    name: str
    grid: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextSection:
    """Systems with a text module fitted apart: the corpus, the fitting function (dotted), its ``C``."""

    corpus: str = "carer"
    fit: str | None = None
    C: float = 1.0


@dataclass(frozen=True)
class Ablation:
    """Systems: the small widths of ``avemo bench ablation`` (``au_kwargs`` added for the AU variant)."""

    kwargs: Mapping[str, Any] = field(default_factory=dict)
    au_kwargs: Mapping[str, Any] = field(default_factory=dict)


SECTIONS: dict[str, type] = {
    "protocol": Protocol, "data": Data, "features": Features, "inputs": Inputs, "model": ModelSpec,
    "optim": Optim, "train": Train, "augment": Augment, "eval": Eval, "ship": Ship, "fusion": FusionSection,
    "ablation": Ablation, "text": TextSection,
}
TOP_LEVEL = ("name", "description", "kind", "corpus", "seed", "audio_front_end", "models", *SECTIONS)


@dataclass(frozen=True)
class Recipe:
    """A parsed, checked recipe: every section typed (absent sections hold their defaults)."""

    name: str
    kind: str
    corpus: str
    seed: int
    description: str = ""
    protocol: Protocol = Protocol()
    data: Data = Data()
    features: Features = Features()
    inputs: Inputs = Inputs()
    model: ModelSpec = ModelSpec()
    optim: Optim = Optim()
    train: Train = Train()
    augment: Augment = Augment()
    eval: Eval = Eval()
    ship: Ship = Ship()
    fusion: FusionSection = FusionSection()
    ablation: Ablation = Ablation()
    text: TextSection = TextSection()
    models: tuple[Candidate, ...] = ()
    audio_front_end: str | None = None  #: a dotted function (wave, sample rate) -> log-mel replacing the plain one
    path: Path | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def default_run_dir(self) -> Path:
        return Path("runs") / self.name

    @property
    def command_line(self) -> str:
        """How this recipe's results are produced, for reports."""
        where = self.path.as_posix() if self.path else f"recipes/{self.name}.yaml"
        return f"avemo train {where} && avemo evaluate {where} --publish"


def _typed(cls: type, value: Any, where: str) -> Any:
    """``value`` (a mapping from YAML) as the dataclass ``cls``; unknown keys and bad types are errors."""
    if value is None:
        return cls()
    if not isinstance(value, Mapping):
        raise RecipeError(f"{where}: must be a mapping, got {type(value).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise RecipeError(f"{where}: unknown keys {unknown}; known: {', '.join(names)}")
    out = {}
    for key, v in value.items():
        if isinstance(v, list):
            v = tuple(v)
        out[key] = v
    try:
        return cls(**out)
    except TypeError as exc:
        raise RecipeError(f"{where}: {exc}") from None


def parse_recipe(raw: Mapping[str, Any], path: Path | None = None) -> Recipe:
    """Check a recipe mapping and type its sections."""
    where = str(path) if path else "recipe"
    unknown = sorted(set(raw) - set(TOP_LEVEL))
    if unknown:
        raise RecipeError(f"{where}: unknown keys {unknown}; known: {', '.join(TOP_LEVEL)}")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise RecipeError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    protocol = raw.get("protocol") or {}
    if isinstance(protocol, str):
        protocol = {"name": protocol}
    sections = {name: _typed(cls, protocol if name == "protocol" else raw.get(name), f"{where}: {name}")
                for name, cls in SECTIONS.items()}
    if sections["protocol"].name not in PROTOCOLS:
        raise RecipeError(f"{where}: protocol must be one of {PROTOCOLS}, got {sections['protocol'].name!r}")
    if sections["train"].select not in ("last", "best"):
        raise RecipeError(f"{where}: train.select must be 'last' or 'best', got {sections['train'].select!r}")
    if sections["optim"].name not in ("adamw", "sgd"):
        raise RecipeError(f"{where}: optim.name must be 'adamw' or 'sgd', got {sections['optim'].name!r}")
    models = tuple(_typed(Candidate, m, f"{where}: models[{i}]") for i, m in enumerate(raw.get("models") or []))
    try:
        seed = int(raw.get("seed", 0))
    except (TypeError, ValueError):
        raise RecipeError(f"{where}: seed must be an integer, got {raw.get('seed')!r}") from None
    return Recipe(name=str(raw.get("name") or (path.stem if path else "recipe")), kind=kind,
                  corpus=str(raw.get("corpus", "ravdess")), seed=seed, description=str(raw.get("description", "")),
                  models=models, audio_front_end=raw.get("audio_front_end"), path=path, raw=copy.deepcopy(dict(raw)),
                  **sections)


def load_recipe(path: str | Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Read and check a recipe; ``overrides`` (dotted keys, e.g. ``{"train.epochs": 1}``) replace values."""
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
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[last] = value
    return parse_recipe(raw, path)
