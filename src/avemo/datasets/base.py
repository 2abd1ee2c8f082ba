"""What every corpus reader returns: :class:`Sample` records inside a :class:`Corpus` report.

The contract, the same for every reader:

* A reader returns a :class:`Corpus`: ``.samples`` (the usable :class:`Sample` records, sorted by path)
  and ``.excluded`` (one :class:`Excluded` per file or row that was left out, with the reason).
* Labels go through :func:`avemo.labels.to_canonical`. A label that maps to ``None`` (contempt, boredom,
  love, ...) is left out and recorded with ``kind="unmapped_label"``; nothing is relabelled silently.
* A file whose name does not parse is skipped and recorded with ``kind="bad_name"``; an annotation
  row whose clip is absent is recorded with ``kind="missing_file"``. The reader also logs one warning
  with the counts (logger ``avemo.datasets``).
* A missing root folder or a layout the reader does not recognise raises :class:`DatasetError`
  naming the path and what was expected.
* Files a caller filtered out on purpose (``modalities=``, ``channels=``, ``views=``, ``splits=``)
  are not "excluded": they were not asked for.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, overload

from avemo.errors import DatasetError
from avemo.labels import EMOTIONS

log = logging.getLogger("avemo.datasets")

MODALITIES: tuple[str, ...] = ("av", "audio", "video", "image", "text")

AUDIO_EXTS = frozenset({".wav", ".flac", ".mp3", ".m4a", ".ogg", ".aac"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".flv", ".mov", ".mkv", ".webm", ".mpg", ".mpeg"})
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".tif", ".tiff"})
TEXT_EXTS = frozenset({".txt", ".csv", ".tsv"})

#: Kinds of exclusion a reader records.
EXCLUSION_KINDS: tuple[str, ...] = ("unmapped_label", "bad_name", "bad_label", "missing_file", "duplicate",
                                    "unannotated")


@dataclass(frozen=True)
class Sample:
    """One labelled item of a corpus.

    ``speaker`` is corpus-prefixed (``"ravdess:19"``) so speakers of different corpora never collide.
    ``take`` groups the files of one recorded take (RAVDESS audio-only, video-only and full-AV files of a
    take share it; so do a CREMA-D take's WAV and FLV): splits keep a take on one side, always.
    ``split`` is a corpus's own predefined partition where it has one (FER-2013 ``"train"``,
    ``"public_test"``, ``"private_test"``; MELD ``"train"``, ``"dev"``, ``"test"``), else ``None``.
    ``meta`` holds the corpus-specific fields (intensity, statement, repetition, gender, row, ...).
    """

    path: Path
    label: str
    speaker: str
    corpus: str
    modality: str
    take: str
    split: str | None = None
    text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.label not in EMOTIONS:
            raise ValueError(f"{self.path}: label {self.label!r} is not canonical (one of {EMOTIONS})")
        if self.modality not in MODALITIES:
            raise ValueError(f"{self.path}: modality {self.modality!r} is not one of {MODALITIES}")
        if not self.speaker.startswith(f"{self.corpus}:"):
            raise ValueError(f"{self.path}: speaker {self.speaker!r} must be prefixed with {self.corpus!r}:")

    @property
    def uid(self) -> str:
        """A key unique within a corpus: the path, plus ``#row`` for samples that are rows of a table."""
        row = self.meta.get("row")
        return f"{self.corpus}:{self.path}" + (f"#{row}" if row is not None else "")


class Excluded(NamedTuple):
    """A file or annotation row a reader left out, and why."""

    path: str
    kind: str
    reason: str


@dataclass
class Corpus(Sequence[Sample]):
    """A reader's result: the samples, and everything left out with its reason.

    Behaves as a read-only sequence of samples, so it can be passed wherever ``Sequence[Sample]`` is
    expected (``speaker_folds(corpus, 5)``).
    """

    name: str
    root: Path
    samples: list[Sample] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> list[Sample]: ...
    def __getitem__(self, i: int | slice) -> Sample | list[Sample]:
        return self.samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def excluded_counts(self) -> dict[str, int]:
        """Number of excluded items per kind (``unmapped_label``, ``bad_name``, ...)."""
        return dict(Counter(e.kind for e in self.excluded))

    def label_counts(self) -> dict[str, int]:
        """Samples per canonical label, in canonical order."""
        counts = Counter(s.label for s in self.samples)
        return {e: counts[e] for e in EMOTIONS if counts[e]}

    def speakers(self) -> list[str]:
        """The distinct speakers, sorted."""
        return sorted({s.speaker for s in self.samples})

    def where(self, predicate: Callable[[Sample], bool]) -> Corpus:
        """A corpus of the samples for which ``predicate`` holds (exclusions are kept as they are)."""
        return Corpus(self.name, self.root, [s for s in self.samples if predicate(s)], list(self.excluded))

    def summary(self) -> str:
        """One line: counts of samples, speakers, labels and exclusions."""
        exc = ", ".join(f"{k} {v}" for k, v in sorted(self.excluded_counts().items())) or "none"
        labels = ", ".join(f"{k} {v}" for k, v in self.label_counts().items())
        return (f"{self.name} at {self.root}: {len(self.samples)} samples, {len(self.speakers())} speakers "
                f"({labels}); excluded: {exc}")


class Collector:
    """Accumulates samples and exclusions while a reader walks a corpus, then makes the :class:`Corpus`."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.samples: list[Sample] = []
        self.excluded: list[Excluded] = []

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def exclude(self, path: str | Path, kind: str, reason: str) -> None:
        if kind not in EXCLUSION_KINDS:
            raise ValueError(f"unknown exclusion kind {kind!r}")
        self.excluded.append(Excluded(str(path), kind, reason))

    def finish(self, *, sort: bool = True) -> Corpus:
        samples = sorted(self.samples, key=lambda s: (str(s.path), s.meta.get("row", -1))) if sort \
            else self.samples
        corpus = Corpus(self.name, self.root, samples, self.excluded)
        if self.excluded:
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(corpus.excluded_counts().items()))
            log.warning("%s: %d samples read, %d left out (%s); see Corpus.excluded",
                        self.name, len(samples), len(self.excluded), counts)
        return corpus


def require_dir(path: str | Path, expected: str) -> Path:
    """``path`` as a ``Path`` if it is a directory, else :class:`DatasetError` saying what was expected."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetError(p, f"not found; expected {expected}")
    if not p.is_dir():
        raise DatasetError(p, f"is not a folder; expected {expected}")
    return p


def require_file(path: str | Path, expected: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetError(p, f"{'not found' if not p.exists() else 'is not a file'}; expected {expected}")
    return p


def walk_files(root: Path, exts: Iterable[str] | None = None) -> list[Path]:
    """Every file under ``root`` at any depth (following links), with a lower-cased suffix in ``exts``,
    sorted. Hidden files (``.``-prefixed, such as macOS ``._x`` resource forks) are ignored."""
    wanted = None if exts is None else {e.lower() for e in exts}
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            if wanted is None or os.path.splitext(name)[1].lower() in wanted:
                out.append(os.path.join(dirpath, name))
    out.sort()  # a deterministic order; sorting strings is much faster than sorting Paths
    return [Path(p) for p in out]


def modality_from_suffix(path: Path) -> str:
    """``audio`` / ``image`` / ``text`` from the extension; any other media file counts as ``av``."""
    ext = path.suffix.lower()
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in IMAGE_EXTS:
        return "image"
    if ext in TEXT_EXTS:
        return "text"
    return "av"
