"""CREMA-D (Cao et al. 2014): 91 actors (1001..1091), 12 sentences, 6 emotions, 4 levels.

Names are ``ActorID_Sentence_Emotion_Level`` (``1001_DFA_ANG_XX``): sentence codes such as DFA, IEO,
TIE...; emotions ANG DIS FEA HAP NEU SAD; level LO MD HI XX (XX: unspecified). The release keeps the
audio in ``AudioWAV/`` (and ``AudioMP3/``) and the videos, which carry their own MP3 audio, in
``VideoFlash/`` (``.flv``) or ``VideoMP4/``. The reader walks ``root`` at any depth, so it also reads a
flat folder of clips. The WAV and the video of one take share ``Sample.take`` (``"cremad:1001_DFA_ANG_XX"``).
When one take has several files of the same modality (WAV and MP3, FLV and MP4) the first of
``.wav .mp3`` / ``.flv .mp4 .avi`` is kept and the others are recorded as ``duplicate``.
If ``VideoDemographics.csv`` is found under ``root``, each sample's ``meta`` gets the actor's sex and age.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from avemo.datasets.base import Collector, Corpus, Sample, require_dir, walk_files
from avemo.errors import DatasetError
from avemo.labels import to_canonical

CORPUS = "cremad"
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
LEVELS = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
_AUDIO = (".wav", ".mp3")
_VIDEO = (".flv", ".mp4", ".avi")


def parse_name(stem: str) -> dict:
    m = _NAME.match(stem)
    if not m:
        raise ValueError("not a CREMA-D name ActorID_Sentence_Emotion_Level")
    actor, sentence, emotion, level = m.groups()
    if not 1001 <= int(actor) <= 1091:
        raise ValueError(f"actor {actor} is not 1001..1091")
    if level not in LEVELS:
        raise ValueError(f"level {level} is not one of {sorted(LEVELS)}")
    return {"actor": int(actor), "sentence": sentence, "emotion_code": emotion, "level": LEVELS[level]}


def _demographics(root: Path) -> dict[int, dict]:
    found = sorted(root.rglob("VideoDemographics.csv"))
    if not found:
        return {}
    table = pd.read_csv(found[0])
    if "ActorID" not in table.columns:
        raise DatasetError(found[0], "no ActorID column; expected ActorID,Age,Sex,Race,Ethnicity")
    out = {}
    for row in table.to_dict("records"):
        out[int(row["ActorID"])] = {"gender": str(row.get("Sex", "")).lower() or None, "age": row.get("Age")}
    return out


def read_cremad(root: str | Path, *, modalities: Iterable[str] = ("audio", "av")) -> Corpus:
    """Read CREMA-D under ``root``: audio files as ``audio`` samples, videos (with audio) as ``av``."""
    root = require_dir(root, "a CREMA-D folder (AudioWAV/*.wav, VideoFlash/*.flv or VideoMP4/*.mp4)")
    modalities = set(modalities)
    if modalities - {"audio", "av"}:
        raise ValueError(f"CREMA-D modalities are 'audio' and 'av', got {sorted(modalities)}")
    order = _AUDIO + _VIDEO
    files = walk_files(root, order)
    if not files:
        raise DatasetError(root, "no .wav/.mp3/.flv/.mp4 files; "
                                 "expected AudioWAV/ and VideoFlash/ or VideoMP4/")
    demo = _demographics(root)
    out = Collector(CORPUS, root)
    chosen: dict[tuple[str, str], Path] = {}
    for path in sorted(files, key=lambda p: (order.index(p.suffix.lower()), str(p))):
        modality = "audio" if path.suffix.lower() in _AUDIO else "av"
        try:
            f = parse_name(path.stem)
        except ValueError as err:
            out.exclude(path, "bad_name", str(err))
            continue
        if modality not in modalities:
            continue
        key = (path.stem, modality)
        if key in chosen:
            out.exclude(path, "duplicate", f"same take and modality as {chosen[key]}")
            continue
        chosen[key] = path
        try:
            label = to_canonical(CORPUS, f["emotion_code"])
        except KeyError:
            out.exclude(path, "bad_label", f"unknown CREMA-D emotion {f['emotion_code']}")
            continue
        if label is None:
            out.exclude(path, "unmapped_label", f"{f['emotion_code']} has no canonical class")
            continue
        meta = {**f, **demo.get(f["actor"], {})}
        out.add(Sample(path=path, label=label, speaker=f"{CORPUS}:{f['actor']}", corpus=CORPUS,
                       modality=modality, take=f"{CORPUS}:{path.stem}", meta=meta))
    return out.finish()
