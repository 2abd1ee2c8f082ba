"""SAVEE (Haq & Jackson 2009): 4 male speakers (DC, JE, JK, KL), 7 emotions, 480 takes.

Published layout: ``AudioData/<speaker>/<code><nn>.wav`` and ``AudioVisualClip/<speaker>/<code><nn>.avi``
with codes ``a`` anger, ``d`` disgust, ``f`` fear, ``h`` happiness, ``n`` neutral, ``sa`` sadness,
``su`` surprise and ``nn`` the sentence number (``sa03.wav``). The audio file and the clip of one take
share ``Sample.take`` (``"savee:DC:sa03"``). Other files (``info.txt``, the ``VideoData`` frame folders)
are ignored. All four speakers are male.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from avemo.datasets.base import Collector, Corpus, Sample, require_dir, walk_files
from avemo.errors import DatasetError
from avemo.labels import to_canonical

CORPUS = "savee"
SPEAKERS = ("DC", "JE", "JK", "KL")
_NAME = re.compile(r"^(sa|su|a|d|f|h|n)(\d{1,2})$", re.IGNORECASE)
_FOLDERS = {"audiodata": ("audio", {".wav"}), "audiovisualclip": ("av", {".avi", ".mp4"})}


def read_savee(root: str | Path, *, modalities: Iterable[str] = ("audio", "av")) -> Corpus:
    """Read SAVEE under ``root`` (the folder holding ``AudioData/`` and/or ``AudioVisualClip/``)."""
    root = require_dir(root, "a SAVEE folder (AudioData/<DC|JE|JK|KL>/*.wav, "
                             "AudioVisualClip/<speaker>/*.avi)")
    modalities = set(modalities)
    if modalities - {"audio", "av"}:
        raise ValueError(f"SAVEE modalities are 'audio' and 'av', got {sorted(modalities)}")
    tops = {d.name.lower(): d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in _FOLDERS}
    if not tops:
        raise DatasetError(root, "neither AudioData/ nor AudioVisualClip/ found")
    out = Collector(CORPUS, root)
    for key, top in sorted(tops.items()):
        modality, exts = _FOLDERS[key]
        if modality not in modalities:
            continue
        for path in walk_files(top, exts):
            rel = path.relative_to(top).parts
            speaker = rel[0].upper() if len(rel) == 2 else None
            if speaker not in SPEAKERS:
                out.exclude(path, "bad_name",
                            f"expected {top.name}/<{'|'.join(SPEAKERS)}>/<code><nn>{path.suffix}")
                continue
            m = _NAME.match(path.stem)
            if not m:
                out.exclude(path, "bad_name", "not a SAVEE name <a|d|f|h|n|sa|su><nn>")
                continue
            code, number = m.group(1).lower(), int(m.group(2))
            label = to_canonical(CORPUS, code)
            if label is None:
                out.exclude(path, "unmapped_label", f"{code} has no canonical class")
                continue
            out.add(Sample(path=path, label=label, speaker=f"{CORPUS}:{speaker}", corpus=CORPUS,
                           modality=modality, take=f"{CORPUS}:{speaker}:{code}{number:02d}",
                           meta={"sentence": number, "emotion_raw": code, "gender": "male"}))
    return out.finish()
