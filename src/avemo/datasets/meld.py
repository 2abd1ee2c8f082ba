"""MELD (Poria et al. 2019): utterances of the TV series *Friends*, with text, audio and video.

Published layout (``MELD.Raw``): ``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv`` with
columns ``Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode,
StartTime, EndTime``, and the clips ``dia<D>_utt<U>.mp4`` in ``train_splits/``, ``dev_splits_complete/``
and ``output_repeated_splits_test/``. CSVs and clip folders are found anywhere under ``root``.

``Sample.split`` is MELD's own ``train`` / ``dev`` / ``test``; ``speaker`` is the ``Speaker`` column
(``"meld:Chandler"``; the same character in every split); ``text`` the utterance; ``take`` is
``"meld:<split>:dia<D>_utt<U>"`` (dialogue numbers restart in each split).
With ``clips=True`` (default) each sample is the ``.mp4`` clip (modality ``av``); a row whose clip is
missing is recorded as ``missing_file``, so the known gaps of the release are reported, not hidden; a
missing clip folder is a :class:`DatasetError`.
With ``clips=False`` the samples are the text rows (modality ``text``, ``path`` = the CSV,
``meta["row"]`` = the row index) and no clip is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from avemo.datasets.base import Collector, Corpus, Sample, require_dir
from avemo.errors import DatasetError
from avemo.labels import to_canonical

CORPUS = "meld"
CSV_NAMES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
REQUIRED = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")


def _find(root: Path, name: str, *, is_dir: bool) -> Path | None:
    if (root / name).exists():
        return root / name
    found = sorted(p for p in root.rglob(name) if p.is_dir() == is_dir)
    return found[0] if found else None


def _read_table(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="cp1252")
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DatasetError(path, f"missing columns {missing}; expected {', '.join(REQUIRED)}, ...")
    return table


def read_meld(root: str | Path, *, splits: Iterable[str] = ("train", "dev", "test"),
              clips: bool = True) -> Corpus:
    """Read MELD's annotation CSVs under ``root`` and, with ``clips=True``, pair each row with its clip."""
    root = require_dir(root, "a MELD folder (train_sent_emo.csv, ..., train_splits/dia0_utt0.mp4, ...)")
    splits = list(splits)
    if set(splits) - set(CSV_NAMES):
        raise ValueError(f"MELD splits are train, dev and test, got {splits}")
    out = Collector(CORPUS, root)
    for split in splits:
        csv_path = _find(root, CSV_NAMES[split], is_dir=False)
        if csv_path is None:
            raise DatasetError(root, f"no {CSV_NAMES[split]} found for the {split} split")
        table = _read_table(csv_path)
        clip_dir = _find(root, CLIP_DIRS[split], is_dir=True) if clips else None
        if clips and clip_dir is None:
            raise DatasetError(root, f"no {CLIP_DIRS[split]}/ folder for the {split} clips "
                                     "(read the text rows alone with clips=False)")
        present = {p.name for p in clip_dir.iterdir()} if clip_dir is not None else set()
        for row, rec in enumerate(table.to_dict("records")):
            dia, utt = rec["Dialogue_ID"].strip(), rec["Utterance_ID"].strip()
            clip_name = f"dia{dia}_utt{utt}.mp4"
            where = f"{csv_path}#{row}"
            if not dia.isdigit() or not utt.isdigit():
                out.exclude(where, "bad_name", f"Dialogue_ID/Utterance_ID {dia!r}/{utt!r} are not integers")
                continue
            speaker = rec["Speaker"].strip()
            if not speaker:
                out.exclude(where, "bad_name", "empty Speaker")
                continue
            try:
                label = to_canonical(CORPUS, rec["Emotion"].strip())
            except KeyError:
                out.exclude(where, "bad_label", f"unknown MELD emotion {rec['Emotion']!r}")
                continue
            if label is None:
                out.exclude(where, "unmapped_label", f"{rec['Emotion']} has no canonical class")
                continue
            if clips:
                if clip_name not in present:
                    out.exclude(clip_dir / clip_name, "missing_file", f"{split} row {row}: clip not found")
                    continue
                path, modality = clip_dir / clip_name, "av"
            else:
                path, modality = csv_path, "text"
            meta = {"row": row, "dialogue_id": int(dia), "utterance_id": int(utt),
                    "emotion_raw": rec["Emotion"].strip(),
                    "sentiment": rec.get("Sentiment", "").strip() or None}
            for key in ("Season", "Episode", "StartTime", "EndTime"):
                if rec.get(key):
                    meta[key.lower()] = rec[key]
            if clips:
                meta["csv"] = str(csv_path)
            out.add(Sample(path=path, label=label, speaker=f"{CORPUS}:{speaker}", corpus=CORPUS,
                           modality=modality, take=f"{CORPUS}:{split}:dia{dia}_utt{utt}", split=split,
                           text=rec["Utterance"], meta=meta))
    return out.finish()
