"""MEAD (Wang et al. 2020): 60 actors, 8 emotions at 3 levels, 7 camera views, audio recorded apart.

Published layout, per actor (``M003``, ``W009``; M male, W female)::

    <actor>/video/<view>/<emotion>/level_<n>/<nnn>.mp4   (views: front down top left_30 left_60
    <actor>/audio/<emotion>/level_<n>/<nnn>.m4a           right_30 right_60)

Emotions ``angry contempt disgusted fear happy neutral sad surprised``; neutral has level_1 only.
The release ships each actor's folders as ``video.tar`` / ``audio.tar``: extract them first (a
still-packed actor is reported as a :class:`DatasetError`). The video files are read as ``video``
samples; the take's audio is the separate ``.m4a``, a sample of modality ``audio`` with the same
``Sample.take`` (``"mead:M003:angry:3:001"``), shared by every view.
Contempt has no canonical class: by default it is left out and counted (``unmapped_label``);
``contempt="disgust"`` merges it into disgust, the one documented merge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from avemo.datasets.base import Collector, Corpus, Sample, require_dir, walk_files
from avemo.errors import DatasetError
from avemo.labels import ContemptPolicy, to_canonical

CORPUS = "mead"
VIEWS = ("front", "down", "top", "left_30", "left_60", "right_30", "right_60")
_ACTOR = re.compile(r"^[MW]\d{3}$", re.IGNORECASE)
_LEVEL = re.compile(r"^level_(\d+)$", re.IGNORECASE)
_CLIP = re.compile(r"^\d{3}$")


def read_mead(root: str | Path, *, modalities: Iterable[str] = ("audio", "video"),
              views: Iterable[str] | None = ("front",), contempt: ContemptPolicy = "drop") -> Corpus:
    """Read MEAD under ``root`` (the folder holding the actor folders, or one actor's folder).

    ``views=None`` keeps every camera view; the default keeps the frontal one.
    """
    root = require_dir(root, "a MEAD folder (<actor>/video/<view>/<emotion>/level_<n>/<nnn>.mp4, "
                             "<actor>/audio/<emotion>/level_<n>/<nnn>.m4a)")
    modalities = set(modalities)
    if modalities - {"audio", "video"}:
        raise ValueError(f"MEAD modalities are 'audio' and 'video', got {sorted(modalities)}")
    views = None if views is None else {v.lower() for v in views}
    actors = [root] if _ACTOR.match(root.name) else \
        [d for d in sorted(root.iterdir()) if d.is_dir() and _ACTOR.match(d.name)]
    if not actors:
        raise DatasetError(root, "no actor folders (M003, W009, ...)")
    out = Collector(CORPUS, root)
    for actor_dir in actors:
        actor = actor_dir.name.upper()
        for part in ("video", "audio"):
            if (actor_dir / f"{part}.tar").is_file() and not (actor_dir / part).is_dir():
                raise DatasetError(actor_dir / f"{part}.tar",
                                   f"still packed; extract it to {actor_dir / part}/")
        for path in walk_files(actor_dir, {".mp4", ".m4a", ".wav", ".avi"}):
            rel = path.relative_to(actor_dir).parts
            kind = rel[0].lower()
            if kind == "video" and len(rel) == 5:
                view, emotion, level, clip = rel[1].lower(), rel[2], rel[3], rel[4]
                modality = "video"
            elif kind == "audio" and len(rel) == 4:
                view, emotion, level, clip = None, rel[1], rel[2], rel[3]
                modality = "audio"
            else:
                out.exclude(path, "bad_name", "expected video/<view>/<emotion>/level_<n>/<nnn>.mp4 "
                                              "or audio/<emotion>/level_<n>/<nnn>.m4a")
                continue
            level_m = _LEVEL.match(level)
            stem = Path(clip).stem
            if not level_m or not _CLIP.match(stem):
                out.exclude(path, "bad_name", "expected level_<n>/<nnn>")
                continue
            if modality not in modalities or (view is not None and views is not None and view not in views):
                continue
            try:
                label = to_canonical(CORPUS, emotion, contempt=contempt)
            except KeyError:
                out.exclude(path, "bad_label", f"unknown MEAD emotion folder {emotion!r}")
                continue
            if label is None:
                out.exclude(path, "unmapped_label", f"{emotion} has no canonical class")
                continue
            n = int(level_m.group(1))
            meta = {"actor": actor, "emotion_raw": emotion.lower(), "level": n, "clip": stem,
                    "gender": "male" if actor.startswith("M") else "female"}
            if view is not None:
                meta["view"] = view
            out.add(Sample(path=path, label=label, speaker=f"{CORPUS}:{actor}", corpus=CORPUS,
                           modality=modality,
                           take=f"{CORPUS}:{actor}:{emotion.lower()}:{n}:{stem}", meta=meta))
    return out.finish()
