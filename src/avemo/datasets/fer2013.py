"""FER-2013 (Goodfellow et al. 2013): 35,887 greyscale 48x48 faces in 7 classes.

Two published forms are read:

* the image folders: ``train/<emotion>/Training_*.jpg`` (28,709) and
  ``test/<emotion>/{PublicTest,PrivateTest}_*.jpg`` (3,589 + 3,589); ``Sample.split`` comes from the
  file-name prefix (``train``, ``public_test``, ``private_test``), ``meta["folder"]`` keeps the folder;
* the original ``fer2013.csv`` (``emotion,pixels,Usage``): each sample is one row, with
  ``path`` = the CSV and ``meta["row"]`` = the 0-based row index; ``split`` comes from ``Usage``.

:func:`load_fer_image` returns the 48x48 uint8 face for either form.

FER-2013 has no speaker identities. Every sample gets the placeholder speaker ``"fer2013:unknown"``
(one shared value, so speaker folds cannot be made by mistake) and its own ``take``. The protocol of
this corpus is its ``Usage`` split, not speaker folds: train on ``train``, select on ``public_test``,
report ``private_test`` (see :func:`avemo.datasets.splits.predefined_split`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd

from avemo.datasets.base import IMAGE_EXTS, Collector, Corpus, Sample, require_dir, require_file, walk_files
from avemo.errors import DatasetError, MediaError
from avemo.labels import to_canonical

CORPUS = "fer2013"
SPEAKER = "fer2013:unknown"
SPLITS = {"Training": "train", "PublicTest": "public_test", "PrivateTest": "private_test"}
SIZE = 48


def read_fer2013(root: str | Path, *, source: str = "auto") -> Corpus:
    """Read FER-2013 from its image folders or from ``fer2013.csv``.

    ``root`` is the folder holding ``train/`` and ``test/``, the CSV itself, or a folder holding
    ``fer2013.csv``. ``source`` forces one form: ``"images"`` or ``"csv"``.
    """
    p = Path(root).expanduser()
    if source not in ("auto", "images", "csv"):
        raise ValueError(f"source must be 'auto', 'images' or 'csv', got {source!r}")
    if source in ("auto", "csv") and p.is_file():
        return _read_csv(p)
    if source == "csv":
        require_dir(p, "fer2013.csv or a folder holding it")
        candidates = sorted(p.rglob("fer2013.csv"))
        if not candidates:
            raise DatasetError(p, "no fer2013.csv found; expected the CSV with emotion,pixels,Usage")
        return _read_csv(candidates[0])
    p = require_dir(p, "a FER-2013 folder (train/<emotion>/*.jpg, test/<emotion>/*.jpg) or fer2013.csv")
    if (p / "train").is_dir() or (p / "test").is_dir() or source == "images":
        return _read_images(p)
    candidates = sorted(p.rglob("fer2013.csv"))
    if candidates:
        return _read_csv(candidates[0])
    raise DatasetError(p, "neither train/ and test/ image folders nor fer2013.csv found")


def _read_images(root: Path) -> Corpus:
    parts = [root / name for name in ("train", "test") if (root / name).is_dir()]
    if not parts:
        raise DatasetError(root, "no train/ or test/ folder; expected train/<emotion>/Training_*.jpg")
    out = Collector(CORPUS, root)
    for part in parts:
        for path in walk_files(part, IMAGE_EXTS):
            if path.parent.parent != part:
                out.exclude(path, "bad_name", f"expected {part.name}/<emotion>/<file>")
                continue
            folder = path.parent.name
            prefix = path.stem.split("_", 1)[0]
            if prefix not in SPLITS or "_" not in path.stem:
                out.exclude(path, "bad_name",
                            "name does not start with Training_, PublicTest_ or PrivateTest_")
                continue
            try:
                label = to_canonical(CORPUS, folder)
            except KeyError:
                out.exclude(path, "bad_label", f"unknown FER-2013 emotion folder {folder!r}")
                continue
            if label is None:
                out.exclude(path, "unmapped_label", f"{folder} has no canonical class")
                continue
            out.add(Sample(path=path, label=label, speaker=SPEAKER, corpus=CORPUS, modality="image",
                           take=f"{CORPUS}:{path.stem}", split=SPLITS[prefix],
                           meta={"folder": part.name, "emotion_raw": folder}))
    return out.finish()


def _read_csv(csv_path: Path) -> Corpus:
    csv_path = require_file(csv_path, "fer2013.csv with columns emotion,pixels,Usage")
    head = pd.read_csv(csv_path, nrows=0)
    missing = {"emotion", "pixels", "Usage"} - set(head.columns)
    if missing:
        raise DatasetError(csv_path, f"missing columns {sorted(missing)}; expected emotion,pixels,Usage")
    table = pd.read_csv(csv_path, usecols=["emotion", "Usage"], dtype=str, keep_default_na=False)
    out = Collector(CORPUS, csv_path)
    for row, (emotion, usage) in enumerate(zip(table["emotion"], table["Usage"], strict=True)):
        where = f"{csv_path}#{row}"
        if usage not in SPLITS:
            out.exclude(where, "bad_name", f"Usage {usage!r} is not Training, PublicTest or PrivateTest")
            continue
        try:
            label = to_canonical(CORPUS, emotion.strip())
        except KeyError:
            out.exclude(where, "bad_label", f"unknown FER-2013 emotion code {emotion!r}")
            continue
        if label is None:
            out.exclude(where, "unmapped_label", f"{emotion} has no canonical class")
            continue
        out.add(Sample(path=csv_path, label=label, speaker=SPEAKER, corpus=CORPUS, modality="image",
                       take=f"{CORPUS}:csv:{row}", split=SPLITS[usage],
                       meta={"row": row, "emotion_raw": emotion}))
    return out.finish()


@functools.lru_cache(maxsize=2)
def _csv_pixels(path: str, mtime: float) -> list[str]:
    return pd.read_csv(path, usecols=["pixels"], dtype=str)["pixels"].tolist()


def load_fer_image(sample: Sample) -> np.ndarray:
    """The sample's face as a 48x48 ``uint8`` array, from an image file or a row of ``fer2013.csv``.

    Images of another size are resized to 48x48 (area interpolation); colour images are converted to grey.
    """
    path = Path(sample.path)
    if "row" in sample.meta and path.suffix.lower() == ".csv":
        pixels = _csv_pixels(str(path), os.path.getmtime(path))
        row = int(sample.meta["row"])
        if not 0 <= row < len(pixels):
            raise MediaError(path, f"row {row} out of range (the CSV has {len(pixels)} rows)")
        values = np.array(pixels[row].split(), dtype=np.int64)
        if values.size != SIZE * SIZE or values.min(initial=0) < 0 or values.max(initial=0) > 255:
            raise MediaError(path, f"row {row}: expected {SIZE * SIZE} pixel values in 0..255, "
                                   f"got {values.size}")
        return values.astype(np.uint8).reshape(SIZE, SIZE)
    import cv2

    if not path.is_file():
        raise MediaError(path, "image not found")
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise MediaError(path, "not a readable image")
    if image.shape != (SIZE, SIZE):
        image = cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return image.astype(np.uint8, copy=False)
