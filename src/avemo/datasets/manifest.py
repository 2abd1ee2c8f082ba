"""A generic manifest: any corpus described by a CSV, one row per sample.

Required columns ``path,label,speaker``; optional ``corpus,modality,take,split,text``. Relative paths
are relative to the CSV's folder. Labels are canonical (``happy``) unless ``label_corpus`` names a
corpus whose labels they are (``label_corpus="meld"`` reads ``joy``); a label that maps to ``None`` is an
``unmapped_label`` exclusion, a label that is neither is a ``bad_label`` exclusion. Speakers are
prefixed with the row's corpus (``corpus`` column, else the ``corpus`` argument) unless they already
are. Defaults: ``modality`` from the extension (audio, image, text; other media ``av``); ``take`` one
per row (the corpus-prefixed path), so give ``take`` where several files share one recording.
Rows whose file is missing are ``missing_file`` exclusions unless ``check_files=False``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from avemo.datasets.base import MODALITIES, Collector, Corpus, Sample, modality_from_suffix, require_file
from avemo.errors import DatasetError
from avemo.labels import EMOTIONS, corpus_labels, to_canonical

REQUIRED = ("path", "label", "speaker")


def read_manifest(csv_path: str | Path, *, corpus: str = "manifest", label_corpus: str | None = None,
                  check_files: bool = True, require_speaker: bool = True) -> Corpus:
    """Read a manifest CSV (``path,label,speaker[,corpus,modality,take,split,text]``); without
    ``require_speaker`` the speaker column may be absent or empty (the speaker is then ``<corpus>:unknown``: fine
    for scoring a model, never for splitting speakers)."""
    if label_corpus is not None:
        corpus_labels(label_corpus)  # KeyError naming the known corpora
    csv_path = require_file(csv_path, "a manifest CSV with columns path,label,speaker")
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    required = REQUIRED if require_speaker else ("path", "label")
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DatasetError(csv_path, f"missing columns {missing}; required: {', '.join(required)}")
    base = csv_path.parent
    out = Collector(corpus, csv_path)
    for row, rec in enumerate(table.to_dict("records")):
        where = f"{csv_path}#{row}"
        raw_path = rec["path"].strip()
        if not raw_path:
            out.exclude(where, "bad_name", "empty path")
            continue
        path = Path(raw_path).expanduser()
        path = path if path.is_absolute() else base / path
        row_corpus = rec.get("corpus", "").strip() or corpus
        raw = rec["label"].strip()
        known = f"{label_corpus} labels" if label_corpus else f"canonical labels {EMOTIONS}"
        if label_corpus:
            try:
                label = to_canonical(label_corpus, raw)
            except KeyError:
                out.exclude(where, "bad_label", f"label {raw!r} is not one of the {known}")
                continue
        elif raw.lower() in EMOTIONS:
            label = raw.lower()
        else:
            out.exclude(where, "bad_label", f"label {raw!r} is not one of the {known}")
            continue
        if label is None:
            out.exclude(where, "unmapped_label", f"{raw} has no canonical class")
            continue
        speaker = rec.get("speaker", "").strip()
        if not speaker and require_speaker:
            out.exclude(where, "bad_name", "empty speaker")
            continue
        speaker = speaker or "unknown"
        if not speaker.startswith(f"{row_corpus}:"):
            speaker = f"{row_corpus}:{speaker}"
        modality = rec.get("modality", "").strip().lower() or modality_from_suffix(path)
        if modality not in MODALITIES:
            out.exclude(where, "bad_name", f"modality {modality!r} is not one of {MODALITIES}")
            continue
        if check_files and not path.exists():
            out.exclude(path, "missing_file", f"row {row}: file not found")
            continue
        take = rec.get("take", "").strip()
        take = (take if take.startswith(f"{row_corpus}:") else f"{row_corpus}:{take}") if take \
            else f"{row_corpus}:{raw_path}"
        out.add(Sample(path=path, label=label, speaker=speaker, corpus=row_corpus, modality=modality,
                       take=take,
                       split=rec.get("split", "").strip() or None, text=rec.get("text") or None,
                       meta={"row": row, "label_raw": raw}))
    return out.finish()
