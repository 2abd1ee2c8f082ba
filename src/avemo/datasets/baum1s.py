"""BAUM-1s (Zhalehpour et al. 2017): spontaneous Turkish audio-visual clips of 31 subjects.

Layout read (the published one, as its distribution and users' scripts show): the clips are
``<SUBJ>_<NNN>.mp4`` (``S001_001.mp4``) in one folder per subject (``BAUM1s_MP4 - All/s001/``), and
an annotation sheet ``Annotations_BAUM1s.xlsx`` (or a CSV export of it) lists one row per clip with the
subject number, the clip name, the emotion name and the emotion code. The spontaneous set's codes are
1 anger, 2 boredom, 3 bothered, 4 concentrating, 5 contempt, 6 disgust, 7 fear, 8 happiness, 9 neutral,
10 sadness, 11 surprise, 12 thinking, 13 unsure.

Assumptions, stated because the sheet's exact header is not documented: the columns are found by
content, not by header: the clip column is the one whose cells look like ``S001_001`` (an extension is
allowed), the emotion column the one whose cells are BAUM-1s emotion names (the first word is used,
so "Unsure (confused)" is "unsure"), the code column the one of integers 1..13. With both a name and a
code, a row where they disagree is a ``bad_label`` exclusion. Clips are found anywhere under ``root``
by stem (case-insensitive); rows without a clip are ``missing_file``, clips without a row ``unannotated``.
Mental states and boredom map to ``None`` (left out and counted); contempt too unless ``contempt="disgust"``.
Reading ``.xlsx`` needs ``openpyxl``; a CSV export needs nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from avemo.datasets.base import Collector, Corpus, Sample, require_dir, require_file, walk_files
from avemo.errors import DatasetError
from avemo.labels import ContemptPolicy, to_canonical

CORPUS = "baum1s"
CODES = {1: "anger", 2: "boredom", 3: "bothered", 4: "concentrating", 5: "contempt", 6: "disgust", 7: "fear",
         8: "happiness", 9: "neutral", 10: "sadness", 11: "surprise", 12: "thinking", 13: "unsure"}
_CLIP = re.compile(r"^(s\d{3})_(\d{3})(\.[a-z0-9]+)?$", re.IGNORECASE)


def _emotion_name(cell: str) -> str | None:
    words = re.findall(r"[a-z]+", cell.lower())
    if not words:
        return None
    try:
        to_canonical(CORPUS, words[0])
    except KeyError:
        return None
    return words[0]


def _find_annotations(root: Path) -> Path:
    found = [p for p in sorted(root.rglob("*")) if p.is_file() and "annotation" in p.name.lower()
             and p.suffix.lower() in (".csv", ".xlsx", ".xls", ".tsv")]
    if not found:
        raise DatasetError(root, "no annotation sheet; expected Annotations_BAUM1s.xlsx (or a CSV export)")
    spont = [p for p in found if "1s" in p.name.lower()]
    return (spont or found)[0]


def _read_sheet(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(path, header=None, dtype=str).fillna("")
        return pd.read_csv(path, header=None, dtype=str, keep_default_na=False,
                           sep="\t" if suffix == ".tsv" else ",", encoding_errors="replace")
    except ImportError as err:
        raise DatasetError(path, f"cannot read the sheet ({err}); install openpyxl or export it to CSV") \
            from err


def read_baum1s(root: str | Path, *, annotations: str | Path | None = None,
                contempt: ContemptPolicy = "drop") -> Corpus:
    """Read BAUM-1s: the clips under ``root`` and their labels from the annotation sheet."""
    root = require_dir(root, "a BAUM-1s folder (s001/S001_001.mp4 ... and Annotations_BAUM1s.xlsx)")
    sheet_path = require_file(annotations, "the BAUM-1s annotation sheet") if annotations else \
        _find_annotations(root)
    sheet = _read_sheet(sheet_path).astype(str).apply(lambda c: c.str.strip())
    n = len(sheet)

    def share(col: str, test) -> float:
        return sum(1 for v in sheet[col] if test(v)) / max(n, 1)

    clip_col = max(sheet.columns, key=lambda c: share(c, lambda v: bool(_CLIP.match(v))))
    if share(clip_col, lambda v: bool(_CLIP.match(v))) == 0:
        raise DatasetError(sheet_path, "no column of clip names like S001_001")
    name_cols = [c for c in sheet.columns
                 if c != clip_col and share(c, lambda v: _emotion_name(v) is not None) > 0.5]
    code_cols = [c for c in sheet.columns if c != clip_col and
                 share(c, lambda v: v.isdigit() and 1 <= int(v) <= 13) > 0.5 and
                 share(c, lambda v: v.isdigit() and int(v) > 1) > 0]
    name_col = name_cols[0] if name_cols else None
    # subject numbers are integers too: take the first integer column after the emotion names (sheet
    # order: subject, ..., clip, emotion, code), else the last integer column
    after = [c for c in code_cols if name_col is not None and list(sheet.columns).index(c) >
             list(sheet.columns).index(name_col)]
    code_col = after[0] if after else (code_cols[-1] if code_cols else None)
    if name_col is None and code_col is None:
        raise DatasetError(sheet_path, "no emotion-name or emotion-code column found")

    clips = {p.stem.upper(): p for p in walk_files(root, {".mp4", ".avi", ".mov"}) if _CLIP.match(p.stem)}
    out = Collector(CORPUS, root)
    annotated: set[str] = set()
    for i, row in sheet.iterrows():
        m = _CLIP.match(row[clip_col])
        if not m:
            continue  # header or blank row
        clip = f"{m.group(1).upper()}_{m.group(2)}"
        where = f"{sheet_path}#{i}"
        name = _emotion_name(row[name_col]) if name_col is not None else None
        code = int(row[code_col]) if code_col is not None and row[code_col].isdigit() else None
        if name is not None and code is not None and CODES.get(code) != name:
            out.exclude(where, "bad_label", f"{clip}: emotion {row[name_col]!r} disagrees with code {code}")
            annotated.add(clip)
            continue
        raw = name or (CODES.get(code) if code is not None else None)
        if raw is None:
            out.exclude(where, "bad_label", f"{clip}: no usable emotion in the row")
            continue
        annotated.add(clip)
        if clip not in clips:
            out.exclude(where, "missing_file", f"{clip}: annotated but no clip file under {root}")
            continue
        label = to_canonical(CORPUS, raw, contempt=contempt)
        if label is None:
            out.exclude(clips[clip], "unmapped_label", f"{raw} has no canonical class")
            continue
        subject = m.group(1).upper()
        out.add(Sample(path=clips[clip], label=label, speaker=f"{CORPUS}:{subject}", corpus=CORPUS,
                       modality="av", take=f"{CORPUS}:{clip}",
                       meta={"subject": subject, "clip": clip, "emotion_raw": raw, "code": code}))
    for clip, path in sorted(clips.items()):
        if clip not in annotated:
            out.exclude(path, "unannotated", f"{clip} has no row in {sheet_path.name}")
    return out.finish()
