"""Model bundles: shipped weights with everything needed to use them, one frozen type per kind.

A bundle is a folder ``avemo/weights/<architecture>.<tag>/`` (or anywhere, loaded by path)::

    bundle.json        kind, architecture, kwargs, labels, preprocessing, files, meta
    MODEL_CARD.md      data, protocol, measured scores, licence
    model.safetensors  the torch weights (training; ``get_model(backend="torch")``)
    model.onnx         the same network for onnxruntime, exported when the bundle was made
    model.int8.onnx    optional (face): a static-int8 copy of model.onnx
    vocabulary.txt     text bundles with embedder "words": the word of each feature column, one a line

:func:`load` reads and checks a bundle without importing torch: the top-level keys and the kind's
``preprocessing`` fields must be exactly those of the kind (:class:`FaceBundle`, :class:`VoiceBundle`,
:class:`FusionBundle`, :class:`TextBundle`), every listed file must be there, and a file's SHA-256 is
checked when it is first used. Callers read what a model expects from properties (``sample_rate``,
``crop``, ``labels``, ...) and never hold constants of their own. The network is built on demand:
``bundle.get_model()`` is the kind's torch-free runtime (onnxruntime for face and voice networks,
numpy for fusion and text), ``bundle.get_model(backend="torch")`` the torch module.
:func:`save_bundle` writes one (with the ONNX export, checked against the torch module).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from avemo.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
SPEC_FILE, CARD_FILE = "bundle.json", "MODEL_CARD.md"
TOP_KEYS = ("kind", "architecture", "kwargs", "labels", "preprocessing", "files", "meta")
#: What each entry of ``files`` is for.
FILE_ROLES = ("weights", "onnx", "int8", "blendshapes", "vocabulary")


def _frozen(value: Any) -> Any:
    """Read-only copies of JSON values: mappings become mapping proxies, lists tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    return value


def _plain(value: Any) -> Any:
    """The JSON form of a frozen value."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- per-kind preprocessing: every field required in bundle.json -------------------------------------
@dataclass(frozen=True)
class FacePreprocessing:
    """How face crops become the network's input."""

    input: str  #: what the crop must show (framing)
    resize: int  #: aligned grey crops are resized to resize x resize
    crop: int  #: the network sees crop x crop views cut from that
    grey: bool
    mean: float  #: (pixel / 255 - mean) / std
    std: float
    tta: str  #: test-time views: "none", "flip" or "tencrop"
    #: weight of the blendshape member (file role ``blendshapes``) in the log-linear pool with the crop network
    #: (0: the crop network alone); a face without MediaPipe landmarks always gets the crop network alone
    blendshape_weight: float
    logit_bias: tuple[float, ...]  #: added to the pooled log-probabilities (a class-prior correction; zeros: none)
    pooling: str  #: a window's probabilities from its frames' (``avemo.faces.expression_model.pool_frames``)


@dataclass(frozen=True)
class VoicePreprocessing:
    """How a waveform becomes the model's input. ``front_end`` says which: ``{"kind": "log-mel", <MelConfig
    fields>}`` (the ONNX network takes the waveform and computes it) or ``{"kind": "whisper-base", "layers":
    [...], "chunk_s": 3.0, "int8": bool}`` (Whisper base's encoder, from its PyPI wheels, its matrix products
    int8-quantized where ``int8``; then ``head``)."""

    input: str
    sample_rate: int
    front_end: Mapping[str, Any]
    head: Mapping[str, Any]  #: a numpy head's settings (kind, temperature, ...); empty for an ONNX network
    window_s: float  #: seconds of audio per prediction
    eval_hop_s: float  #: step between windows when a clip is longer
    trim_db: float  #: leading/trailing silence trimmed in training (dB under the peak; 0: none)
    normalisation: str
    output: str


@dataclass(frozen=True)
class FusionPreprocessing:
    """The fusion rule's parameters."""

    weights: Mapping[str, float]
    temperatures: Mapping[str, float]
    labels: tuple[str, ...]
    rule: str
    face_without_calm: str


@dataclass(frozen=True)
class ReliabilityFusionPreprocessing:
    """The reliability-weighted fusion's parameters (:class:`avemo.models.fusion.reliability.ReliabilityFusion`):
    per modality, ``r = softplus(coefficients[0] + evidence . coefficients[1:])`` over the evidence columns
    ``prob_features`` then ``flags[m]``."""

    labels: tuple[str, ...]
    prob_features: tuple[str, ...]  #: evidence computed from each modality's own probabilities, in order
    flags: Mapping[str, tuple[str, ...]]  #: per modality, the per-window flags the caller passes, in order
    flag_defaults: Mapping[str, tuple[float, ...]]  #: a flag's value when not given
    coefficients: Mapping[str, tuple[float, ...]]  #: per modality: bias, then one per evidence column
    uncertain_below: float  #: a window whose fused label's probability is under this is flagged uncertain
    rule: str
    missing_classes: str
    #: per gated modality, the flag that, given as 0, keeps it out where another is present (older bundles: none)
    gates: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DecisionFusionPreprocessing:
    """Fixed-weight decision fusion (:class:`avemo.models.fusion.reliability.DecisionFusion`)."""

    labels: tuple[str, ...]
    weights: Mapping[str, float]
    uncertain_below: float
    rule: str


@dataclass(frozen=True)
class TextPreprocessing:
    """How text becomes the classifier's input (word n-grams, TF-IDF) and which languages it serves."""

    input: str
    #: "tfidf" (hashed word n-gram counts) or "words" (counts over the shipped vocabulary), then sublinear
    #: TF-IDF and L2: the torch-free ones; "minilm" needs torch
    embedder: str
    n_features: int
    ngram_max: int
    languages: tuple[str, ...]  #: language codes of the text it was fitted on (ISO 639-1, as Whisper's)


def _as_dict(obj: Any) -> dict[str, Any]:
    """A preprocessing record as plain JSON values."""
    return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}


def _check_fields(cls: type, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    names = [f.name for f in fields(cls)]
    optional = {f.name: f.default_factory() for f in fields(cls) if f.default_factory is not MISSING}
    unknown = sorted(set(given) - set(names))
    missing = [n for n in names if n not in given and n not in optional]
    if unknown or missing:
        raise ModelError(f"{where}: preprocessing does not fit a {cls.__name__.removesuffix('Preprocessing').lower()} "
                         f"bundle (unknown {unknown}, missing {missing})")
    return {n: _frozen(given[n] if n in given else optional[n]) for n in names}


@dataclass(frozen=True)
class BundleFile:
    """A file of the bundle and its SHA-256."""

    name: str
    sha256: str


# ---- the bundle types ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    """What every bundle has; use a kind's subclass (:func:`load` picks it)."""

    name: str
    path: Path
    architecture: str
    kwargs: Mapping[str, Any]
    labels: tuple[str, ...]
    preprocessing: Any
    files: Mapping[str, BundleFile]
    meta: Mapping[str, Any]

    kind: ClassVar[str] = ""
    PREPROCESSING: ClassVar[type] = type(None)
    #: architectures of the kind whose preprocessing differs from ``PREPROCESSING``
    ARCHITECTURE_PREPROCESSING: ClassVar[Mapping[str, type]] = MappingProxyType({})
    BACKENDS: ClassVar[tuple[str, ...]] = ("torch",)
    #: where the registered network's parameters sit in the ONNX graph's names (voice: after the log-mel, "1.")
    ONNX_PREFIX: ClassVar[str] = ""

    @classmethod
    def preprocessing_type(cls, architecture: str) -> type:
        """The preprocessing record of ``architecture`` in this kind."""
        return cls.ARCHITECTURE_PREPROCESSING.get(architecture, cls.PREPROCESSING)

    @property
    def card(self) -> str:
        """The model card's text ('' when none ships)."""
        card = self.path / CARD_FILE
        return card.read_text() if card.is_file() else ""

    def file(self, role: str) -> Path:
        """The path of the file that plays ``role`` (``weights``, ``onnx``, ``int8``), its hash checked."""
        entry = self.files.get(role)
        if entry is None:
            raise ModelError(f"bundle {self.name}: has no {role} file (files: {', '.join(self.files) or 'none'})")
        path = self.path / entry.name
        key = (str(path), entry.sha256)
        if key not in _VERIFIED:
            if not path.is_file():
                raise ModelError(f"bundle {self.name}: {entry.name} is missing from {self.path}")
            if sha256(path) != entry.sha256:
                raise ModelError(f"bundle {self.name}: {path} does not match its SHA-256 in {SPEC_FILE} "
                                 "(damaged or replaced; reinstall avemo)")
            _VERIFIED.add(key)
        return path

    def get_model(self, backend: str | None = None, **options: Any) -> Any:
        """The network: ``backend`` None is the kind's torch-free runtime, ``"torch"`` the torch module."""
        backend = backend or self.BACKENDS[0]
        if backend not in self.BACKENDS:
            raise ModelError(f"bundle {self.name}: backend must be one of {self.BACKENDS}, got {backend!r}")
        return self._torch_model() if backend == "torch" else self._runtime_model(**options)

    def _runtime_model(self, **options: Any) -> Any:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """The network's tensors: the ONNX graph's initializers (float16-stored ones back to float32), plus
        ``model.safetensors`` for what the graph does not hold (tensors the exporter merged with an identical
        one, or a bundle without a graph). One copy of each weight ships."""
        import torch
        from safetensors.torch import load_file

        state: dict[str, Any] = {}
        if "onnx" in self.files:
            import onnx
            from onnx import numpy_helper

            for init in onnx.load(str(self.file("onnx"))).graph.initializer:
                name = init.name.removesuffix("__fp16")
                if name.startswith(self.ONNX_PREFIX):
                    arr = numpy_helper.to_array(init)
                    state[name[len(self.ONNX_PREFIX):]] = torch.from_numpy(
                        arr.astype(np.float32) if arr.dtype == np.float16 else arr.copy())
        if "weights" in self.files:
            state.update(load_file(str(self.file("weights"))))
        return state

    def _torch_model(self) -> Any:
        """The registered architecture with the bundle's weights, in eval mode."""
        from avemo.models.registry import create_model

        model = create_model(self.architecture, **_plain(self.kwargs))
        missing, unexpected = model.load_state_dict(self.state_dict(), strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]  # a training counter only
        if missing or unexpected:
            raise ModelError(f"bundle {self.name}: weights do not fit {self.architecture!r} "
                             f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        return model.float().eval()

    def spec(self) -> dict[str, Any]:
        """The ``bundle.json`` content."""
        return {"kind": self.kind, "architecture": self.architecture, "kwargs": _plain(self.kwargs),
                "labels": list(self.labels), "preprocessing": _as_dict(self.preprocessing),
                "files": {role: asdict(f) for role, f in self.files.items()}, "meta": _plain(self.meta)}


_VERIFIED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class FaceBundle(Bundle):
    """A face expression network: aligned grey crops in, logits over ``labels`` out."""

    kind: ClassVar[str] = "face"
    PREPROCESSING: ClassVar[type] = FacePreprocessing
    BACKENDS: ClassVar[tuple[str, ...]] = ("onnx", "torch")

    @property
    def input_size(self) -> int:
        """Side of the aligned crop the face path must deliver (resized to this)."""
        return int(self.preprocessing.resize)

    @property
    def crop(self) -> int:
        """Side of the views the network sees."""
        return int(self.preprocessing.crop)

    @property
    def tta(self) -> str:
        return str(self.preprocessing.tta)

    @property
    def has_int8(self) -> bool:
        return "int8" in self.files

    def blendshape_member(self) -> Any:
        """The blendshape classifier (:class:`avemo.faces.expression_model.BlendshapeClassifier`), or None when
        the bundle's crop network answers alone."""
        if not self.preprocessing.blendshape_weight:
            return None
        from avemo.faces.expression_model import BlendshapeClassifier

        return BlendshapeClassifier.load(self.file("blendshapes"))

    def _runtime_model(self, *, int8: bool = False, threads: int | None = 1) -> Any:
        from avemo.models.onnx import OnnxNetwork

        return OnnxNetwork(self.file("int8" if int8 else "onnx"), threads=threads)


@dataclass(frozen=True)
class VoiceBundle(Bundle):
    """A voice emotion network: mono waveform windows at ``sample_rate`` in, logits over ``labels`` out
    (the ONNX network and ``get_model("torch")`` both include the log-mel front end)."""

    kind: ClassVar[str] = "voice"
    PREPROCESSING: ClassVar[type] = VoicePreprocessing
    BACKENDS: ClassVar[tuple[str, ...]] = ("onnx", "torch")
    ONNX_PREFIX: ClassVar[str] = "1."  # the graph is Sequential(LogMel, network)

    @property
    def front_end(self) -> str:
        """``"log-mel"`` (an ONNX network on the waveform) or ``"whisper-base"`` (encoder + numpy head)."""
        return str(self.preprocessing.front_end["kind"])

    @cached_property
    def mel(self) -> Any:
        """The log-mel settings (:class:`avemo.audio.MelConfig`) of a ``log-mel`` front end."""
        from avemo.audio.melconfig import MelConfig

        if self.front_end != "log-mel":
            raise ModelError(f"bundle {self.name}: a {self.front_end} front end has no log-mel settings")
        return MelConfig.from_dict({k: v for k, v in _plain(self.preprocessing.front_end).items() if k != "kind"})

    @property
    def sample_rate(self) -> int:
        return int(self.preprocessing.sample_rate)

    @property
    def window_s(self) -> float:
        return float(self.preprocessing.window_s)

    def _runtime_model(self, *, threads: int | None = 1) -> Any:
        if self.front_end == "whisper-base":
            from safetensors.numpy import load_file

            from avemo.audio.whisper_voice import WhisperVoiceModel

            front, head = _plain(self.preprocessing.front_end), _plain(self.preprocessing.head)
            settings = {"head": head["kind"], "temperature": head["temperature"], "layers": front["layers"],
                        "layer": None, "chunk_s": front["chunk_s"], "labels": list(self.labels),
                        "int8": bool(front.get("int8", False))}
            if head["kind"] == "attn":
                settings["heads"] = head["heads"]
            if head["kind"] == "blend":
                settings["members"] = head["members"]
            return WhisperVoiceModel(load_file(str(self.file("weights"))), settings, threads=threads or 1,
                                     name=f"bundle {self.name}")
        from avemo.models.onnx import OnnxNetwork

        return OnnxNetwork(self.file("onnx"), threads=threads)

    def _torch_model(self) -> Any:
        import torch

        from avemo.audio.mel import LogMel

        if self.front_end == "whisper-base":
            from safetensors.numpy import load_file

            from avemo.models.encoders.whisper import WhisperVoiceNet

            head = _plain(self.preprocessing.head)
            if head["kind"] not in ("linear", "blend"):
                raise ModelError(f"bundle {self.name}: a torch module is built for linear heads and blends only")
            return WhisperVoiceNet(layers=self.preprocessing.front_end["layers"],
                                   head=load_file(str(self.file("weights"))), temperature=head["temperature"],
                                   members=head.get("members")).eval()
        return torch.nn.Sequential(LogMel(self.mel), super()._torch_model()).eval()


@dataclass(frozen=True)
class FusionBundle(Bundle):
    """A fusion rule (no network file). Architecture ``fusion``: calibrated late fusion, per-modality temperatures
    and log-linear weights (:class:`~avemo.models.fusion.late.LateFusion`; its ``fuse`` gives the fused
    probabilities). ``reliability_fusion``: per-window weights from each modality's evidence about itself
    (:class:`~avemo.models.fusion.reliability.ReliabilityFusion`); ``decision_fusion``: fixed-weight averaging of
    probabilities (:class:`~avemo.models.fusion.reliability.DecisionFusion`); the ``fuse`` of these two gives
    ``(fused, weights, uncertain)``. All run on numpy."""

    kind: ClassVar[str] = "fusion"
    PREPROCESSING: ClassVar[type] = FusionPreprocessing
    ARCHITECTURE_PREPROCESSING: ClassVar[Mapping[str, type]] = MappingProxyType({
        "reliability_fusion": ReliabilityFusionPreprocessing, "decision_fusion": DecisionFusionPreprocessing})
    BACKENDS: ClassVar[tuple[str, ...]] = ("numpy", "torch")

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.kwargs["modalities"])

    @property
    def temperatures(self) -> dict[str, float]:
        """Per-modality temperatures (``fusion``; other architectures have none: empty)."""
        return dict(getattr(self.preprocessing, "temperatures", {}))

    @property
    def weights(self) -> dict[str, float]:
        """Fixed per-modality weights (``fusion``, ``decision_fusion``; ``reliability_fusion``: per window, empty)."""
        return dict(getattr(self.preprocessing, "weights", {}))

    def _runtime_model(self) -> Any:
        if self.architecture == "reliability_fusion":
            from avemo.models.fusion.reliability import ReliabilityFusion

            pre = self.preprocessing
            return ReliabilityFusion(modalities=self.modalities, coefficients=_plain(pre.coefficients),
                                     flags=_plain(pre.flags), flag_defaults=_plain(pre.flag_defaults),
                                     uncertain_below=pre.uncertain_below, gates=_plain(pre.gates))
        if self.architecture == "decision_fusion":
            from avemo.models.fusion.reliability import DecisionFusion

            return DecisionFusion(modalities=self.modalities, weights=self.weights,
                                  uncertain_below=self.preprocessing.uncertain_below)
        from avemo.models.fusion.late import LateFusion

        return LateFusion(modalities=self.modalities, temperatures=self.temperatures, weights=self.weights)

    def _torch_model(self) -> Any:
        from avemo.models.registry import create_model

        if self.architecture == "reliability_fusion":
            pre = self.preprocessing
            model = create_model(self.architecture, flags=_plain(pre.flags), gates=_plain(pre.gates),
                                 **_plain(self.kwargs))
            model.set_coefficients(_plain(pre.coefficients), _plain(pre.flag_defaults))
            return model.eval()
        if self.architecture != "fusion":
            raise ModelError(f"bundle {self.name}: a {self.architecture} bundle runs on numpy only (get_model())")

        model = create_model(self.architecture, **_plain(self.kwargs))
        model.set_parameters(self.temperatures, self.weights)
        return model.eval()


@dataclass(frozen=True)
class TextBundle(Bundle):
    """A text emotion classifier: sentences in, logits over ``labels`` out (word n-gram TF-IDF and a
    linear layer; the fitted state is in ``model.safetensors``, the vocabulary in ``vocabulary.txt``)."""

    kind: ClassVar[str] = "text"
    PREPROCESSING: ClassVar[type] = TextPreprocessing
    BACKENDS: ClassVar[tuple[str, ...]] = ("numpy", "torch")

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages it serves (text in another language is not scored)."""
        return tuple(self.preprocessing.languages)

    def vocabulary(self) -> tuple[str, ...] | None:
        """The word of each feature column (``embedder="words"``), None for hashed features."""
        if self.preprocessing.embedder != "words":
            return None
        words = tuple(self.file("vocabulary").read_text(encoding="utf-8").rstrip("\n").split("\n"))
        if len(words) != self.preprocessing.n_features:
            raise ModelError(f"bundle {self.name}: {len(words)} vocabulary entries for "
                             f"{self.preprocessing.n_features} features")
        return words

    def _runtime_model(self) -> Any:
        from safetensors.numpy import load_file

        from avemo.models.text import TextLinearModel

        if self.preprocessing.embedder not in ("tfidf", "words"):
            raise ModelError(f"bundle {self.name}: only the tfidf and words embedders run without torch")
        state = load_file(str(self.file("weights")))
        return TextLinearModel(idf=state["idf"], weight=state["weight"], bias=state["bias"],
                               n_features=self.preprocessing.n_features, ngram_max=self.preprocessing.ngram_max,
                               vocabulary=self.vocabulary())

    def _torch_model(self) -> Any:
        model = super()._torch_model()
        vocabulary = self.vocabulary()
        return model if vocabulary is None else model.set_vocabulary(vocabulary)


KIND_TYPES: dict[str, type[Bundle]] = {cls.kind: cls for cls in (FaceBundle, VoiceBundle, FusionBundle, TextBundle)}


# ---- reading -------------------------------------------------------------------------------------------
def list_bundles() -> list[str]:
    """Names of the bundles shipped in the package."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / SPEC_FILE).is_file())


def read_bundle(folder: str | Path) -> Bundle:
    """Read and check a bundle folder (no network is built; see :meth:`Bundle.get_model`)."""
    folder = Path(folder)
    spec_path = folder / SPEC_FILE
    if not spec_path.is_file():
        raise ModelError(f"{folder}: not a model bundle (no {SPEC_FILE})")
    where = f"bundle {folder.name} ({spec_path})"
    try:
        spec = json.loads(spec_path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise ModelError(f"{where}: must hold a JSON object")
    unknown = sorted(set(spec) - set(TOP_KEYS))
    missing = [k for k in TOP_KEYS if k not in spec]
    if unknown or missing:
        raise ModelError(f"{where}: unknown keys {unknown}, missing keys {missing}")
    cls = KIND_TYPES.get(spec["kind"])
    if cls is None:
        raise ModelError(f"{where}: kind must be one of {tuple(KIND_TYPES)}, got {spec['kind']!r}")
    files: dict[str, BundleFile] = {}
    for role, entry in (spec["files"] or {}).items():
        if role not in FILE_ROLES or not isinstance(entry, dict) or set(entry) != {"name", "sha256"}:
            raise ModelError(f"{where}: files.{role} must be one of {FILE_ROLES} with a name and a sha256")
        if not (folder / entry["name"]).is_file():
            raise ModelError(f"{where}: {entry['name']} is missing")
        files[role] = BundleFile(**entry)
    if not spec["labels"] or not all(isinstance(x, str) for x in spec["labels"]):
        raise ModelError(f"{where}: labels must be a non-empty list of class names")
    kind_pre = cls.preprocessing_type(str(spec["architecture"]))
    preprocessing = kind_pre(**_check_fields(kind_pre, spec["preprocessing"] or {}, where))
    return cls(name=folder.name, path=folder, architecture=str(spec["architecture"]),
               kwargs=_frozen(spec["kwargs"] or {}), labels=tuple(spec["labels"]), preprocessing=preprocessing,
               files=MappingProxyType(files), meta=_frozen(spec["meta"] or {}))


def load(name: str | Path | Bundle) -> Bundle:
    """A shipped bundle by name (``architecture.tag``), or a bundle folder by path."""
    if isinstance(name, Bundle):
        return name
    path = Path(name)
    if path.is_dir():
        return read_bundle(path)
    folder = WEIGHTS_DIR / str(name)
    if not (folder / SPEC_FILE).is_file():
        raise ModelError(f"no bundle named {str(name)!r}; shipped: {', '.join(list_bundles()) or 'none'}")
    return read_bundle(folder)


# ---- writing (torch) -------------------------------------------------------------------------------------
def save_bundle(folder: str | Path, *, kind: str, architecture: str, labels: Sequence[str],
                kwargs: Mapping[str, Any] | None = None, preprocessing: Mapping[str, Any],
                meta: Mapping[str, Any] | None = None, model: Any = None, check_inputs: Any = None,
                half_weights: bool = False, extra_files: Mapping[str, str] | None = None,
                card: str | None = None) -> Bundle:
    """Write a bundle folder and return it, read back and checked.

    ``model`` (torch) is saved as ``model.safetensors`` (``half_weights``: float16) and, for face and
    voice bundles, exported to ``model.onnx`` from the saved weights; ``check_inputs`` (real inputs in the
    network's input form) are then run through both and must agree (max logit difference 1e-3). The graph then
    holds the weights, so ``model.safetensors`` keeps only the few tensors it does not (or goes), and the
    network rebuilt from the bundle must hold exactly the model's tensors.
    ``extra_files`` (role -> file name already in the folder, e.g. ``int8``) are listed with their hash.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cls = KIND_TYPES.get(kind)
    if cls is None:
        raise ModelError(f"kind must be one of {tuple(KIND_TYPES)}, got {kind!r}")
    kind_pre = cls.preprocessing_type(architecture)
    pre = kind_pre(**_check_fields(kind_pre, dict(preprocessing), f"bundle {folder.name}"))
    names: dict[str, str] = {}
    if model is not None and kind != "fusion":
        from safetensors.torch import save_file

        dtype_half = half_weights
        state = {k: (v.detach().cpu().half() if dtype_half and v.is_floating_point() else v.detach().cpu())
                 .contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
        names["weights"] = "model.safetensors"
    names.update(extra_files or {})
    spec = {"kind": kind, "architecture": architecture, "kwargs": dict(kwargs or {}), "labels": list(labels),
            "preprocessing": _as_dict(pre), "files": {}, "meta": dict(meta or {})}
    _write_spec(folder, spec, names)
    if model is not None and kind in ("face", "voice"):
        bundle = read_bundle(folder)
        torch_model = bundle.get_model("torch")
        example = check_inputs if check_inputs is not None else _example(bundle)
        from avemo.models.onnx import export_network

        export_network(torch_model, example[:2], folder / "model.onnx", dynamic_length=kind == "voice",
                       half_weights=half_weights)
        names["onnx"] = "model.onnx"
        _write_spec(folder, spec, names)
        check_onnx(read_bundle(folder), example)
        _keep_only_what_the_graph_lacks(folder, spec, names, state, cls.ONNX_PREFIX)
    if card is not None:
        (folder / CARD_FILE).write_text(card)
    return read_bundle(folder)


def _keep_only_what_the_graph_lacks(folder: Path, spec: dict[str, Any], names: dict[str, str], state: dict[str, Any],
                                    prefix: str) -> None:
    """Rewrite ``model.safetensors`` with the tensors ``model.onnx`` lacks (none: the file goes), then check that
    the bundle still gives back every tensor of ``state`` exactly."""
    import onnx
    import torch
    from safetensors.torch import save_file

    in_graph = {i.name.removesuffix("__fp16")[len(prefix):] for i in onnx.load(str(folder / "model.onnx")).graph
                .initializer if i.name.startswith(prefix)}
    rest = {k: v for k, v in state.items() if k not in in_graph and not k.endswith("num_batches_tracked")}
    if rest:
        save_file(rest, str(folder / "model.safetensors"))
    else:
        (folder / "model.safetensors").unlink()
        names.pop("weights")
    _write_spec(folder, spec, names)
    back = read_bundle(folder).state_dict()
    for k, v in state.items():
        if not k.endswith("num_batches_tracked") and not torch.equal(back[k].to(v.dtype), v):
            raise ModelError(f"bundle {folder.name}: tensor {k} does not come back from the bundle unchanged")


def add_file(bundle: Bundle, role: str, name: str, meta: Mapping[str, Any] | None = None) -> Bundle:
    """List a file already in the bundle's folder under ``role`` (with its hash), update ``meta``, and
    return the bundle read back."""
    if role not in FILE_ROLES:
        raise ModelError(f"file role must be one of {FILE_ROLES}, got {role!r}")
    spec = bundle.spec()
    spec["meta"].update(meta or {})
    _write_spec(bundle.path, spec, {**{r: f.name for r, f in bundle.files.items()}, role: name})
    return read_bundle(bundle.path)


def _write_spec(folder: Path, spec: dict[str, Any], names: Mapping[str, str]) -> None:
    spec["files"] = {role: {"name": n, "sha256": sha256(folder / n)} for role, n in names.items()}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n")


def _example(bundle: Bundle) -> Any:
    import torch

    gen = torch.Generator().manual_seed(0)
    if isinstance(bundle, FaceBundle):
        return torch.randn(4, 1, bundle.crop, bundle.crop, generator=gen)
    return 0.1 * torch.randn(4, int(bundle.window_s * bundle.sample_rate), generator=gen)


def check_onnx(bundle: Bundle, inputs: Any, *, tolerance: float = 1e-3) -> float:
    """Run ``inputs`` through the bundle's torch module and its ONNX network; returns the largest logit
    difference, or raises :class:`ModelError` above ``tolerance``."""
    import torch

    from avemo.models.onnx import max_difference

    x = inputs if isinstance(inputs, torch.Tensor) else torch.from_numpy(np.asarray(inputs, dtype=np.float32))
    with torch.inference_mode():
        want = bundle.get_model("torch")(x).numpy()
    got = bundle.get_model("onnx")(x.numpy())
    diff = max_difference(want, got)
    if diff > tolerance:
        raise ModelError(f"bundle {bundle.name}: the ONNX network differs from the torch module by {diff:.2e}")
    return diff
