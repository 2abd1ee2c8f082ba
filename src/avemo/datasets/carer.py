"""CARER (Saravia et al. 2018): 20,000 English sentences labelled with six emotions, for the text branch.

Layout: ``train.txt`` (16,000), ``val.txt`` (2,000), ``test.txt`` (2,000), one ``sentence;label`` per
line. Each sample is one line: ``path`` = the file, ``meta["row"]`` = the 0-based line, ``text`` = the
sentence, ``split`` = ``train`` / ``val`` / ``test``. *love* has no canonical class: those lines are
left out and counted (``unmapped_label``). There are no speakers: the placeholder ``"carer:unknown"``
is used, and the protocol is the given split.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from avemo.datasets.base import Collector, Corpus, Sample, require_dir
from avemo.errors import DatasetError
from avemo.labels import to_canonical

CORPUS = "carer"
SPEAKER = "carer:unknown"
FILES = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}


def read_carer(root: str | Path, *, splits: Iterable[str] = ("train", "val", "test")) -> Corpus:
    """Read the CARER text files under ``root``."""
    root = require_dir(root, "a CARER folder (train.txt, val.txt, test.txt with sentence;label lines)")
    out = Collector(CORPUS, root)
    for split in splits:
        if split not in FILES:
            raise ValueError(f"CARER splits are {list(FILES)}, got {split!r}")
        path = root / FILES[split]
        if not path.is_file():
            raise DatasetError(path, f"not found; expected the {split} split as sentence;label lines")
        with open(path, encoding="utf-8") as fh:
            for row, line in enumerate(fh):
                line = line.rstrip("\n")
                sentence, sep, raw = line.rpartition(";")
                if not sep or not sentence.strip():
                    out.exclude(f"{path}#{row}", "bad_name", "not a sentence;label line")
                    continue
                try:
                    label = to_canonical(CORPUS, raw.strip())
                except KeyError:
                    out.exclude(f"{path}#{row}", "bad_label", f"unknown CARER label {raw!r}")
                    continue
                if label is None:
                    out.exclude(f"{path}#{row}", "unmapped_label", f"{raw} has no canonical class")
                    continue
                out.add(Sample(path=path, label=label, speaker=SPEAKER, corpus=CORPUS, modality="text",
                               take=f"{CORPUS}:{split}:{row}", split=split, text=sentence,
                               meta={"row": row, "emotion_raw": raw.strip()}))
    return out.finish()
