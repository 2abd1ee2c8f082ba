"""RAVDESS (Livingstone & Russo 2018): file names, the reader, and its facial action unit table.

Every file is named ``MM-VV-EE-II-SS-RR-AA.ext``:

* ``MM`` modality: 01 full AV (``.mp4``), 02 video-only (``.mp4``), 03 audio-only (``.wav``; ``.flac``
  in the shared 16 kHz copy);
* ``VV`` vocal channel: 01 speech, 02 song;
* ``EE`` emotion 01..08 (neutral calm happy sad angry fearful disgust surprised);
* ``II`` intensity: 01 normal, 02 strong (neutral has no strong);
* ``SS`` statement: 01 "Kids are talking by the door", 02 "Dogs are sitting by the door";
* ``RR`` repetition 01, 02;
* ``AA`` actor 01..24, odd male, even female.

The reader accepts the original release (``Actor_NN/*.wav`` at 48 kHz and the ``*.mp4`` videos, under
any folder names and depth) and the shared 16 kHz FLAC copy alike: a sample is keyed by its stem.
The three files of one take (01-, 02- and 03-) share ``Sample.take`` = ``"ravdess:VV-EE-II-SS-RR-AA"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from avemo.datasets.base import AUDIO_EXTS, Collector, Corpus, Sample, require_dir, require_file, walk_files
from avemo.errors import DatasetError
from avemo.labels import to_canonical

CORPUS = "ravdess"
_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_ACTOR_DIR = re.compile(r"^actor_(\d{1,2})$", re.IGNORECASE)
MODALITY_CODES = {"01": "av", "02": "video", "03": "audio"}
CHANNEL_CODES = {"01": "speech", "02": "song"}
INTENSITY_CODES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
#: The 35 columns of ``ravdess-au/au35_clip_means.csv``: 17 AU intensities, then 18 AU presences.
_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26)
AU_INTENSITY = tuple(f"AU{n:02d}_r_mean" for n in (*_AUS, 45))
AU_PRESENCE = tuple(f"AU{n:02d}_c_mean" for n in (*_AUS, 28, 45))
AU_COLUMNS = AU_INTENSITY + AU_PRESENCE
_EXTS = {".wav", ".flac", ".mp4"}
# when the same stem is present twice (a WAV original next to its FLAC copy), keep the first of these
_PREFERENCE = (".wav", ".flac", ".mp4")


def parse_name(stem: str) -> dict:
    """The fields of a RAVDESS stem; ``ValueError`` with the reason when it is not one."""
    m = _NAME.match(stem)
    if not m:
        raise ValueError("not a RAVDESS name MM-VV-EE-II-SS-RR-AA")
    mm, vv, ee, ii, ss, rr, aa = m.groups()
    if mm not in MODALITY_CODES:
        raise ValueError(f"modality {mm} is not 01, 02 or 03")
    if vv not in CHANNEL_CODES:
        raise ValueError(f"vocal channel {vv} is not 01 or 02")
    if not "01" <= ee <= "08":
        raise ValueError(f"emotion {ee} is not 01..08")
    if ii not in INTENSITY_CODES:
        raise ValueError(f"intensity {ii} is not 01 or 02")
    if ee == "01" and ii == "02":
        raise ValueError("neutral has no strong intensity")
    if ss not in STATEMENTS:
        raise ValueError(f"statement {ss} is not 01 or 02")
    if rr not in ("01", "02"):
        raise ValueError(f"repetition {rr} is not 01 or 02")
    actor = int(aa)
    if not 1 <= actor <= 24:
        raise ValueError(f"actor {aa} is not 01..24")
    return {
        "modality": MODALITY_CODES[mm], "modality_code": mm, "vocal_channel": CHANNEL_CODES[vv],
        "emotion_code": ee, "intensity": INTENSITY_CODES[ii], "statement": int(ss),
        "statement_text": STATEMENTS[ss], "repetition": int(rr), "actor": actor,
        "gender": "male" if actor % 2 else "female", "take_key": "-".join((vv, ee, ii, ss, rr, aa)),
    }


def read_ravdess(root: str | Path, *, modalities: Iterable[str] = ("audio", "video", "av"),
                 channels: Iterable[str] = ("speech", "song")) -> Corpus:
    """Read RAVDESS under ``root`` (any depth); keep the given modalities and vocal channels.

    Speakers are ``"ravdess:NN"`` (the two-digit actor field). Files with a non-RAVDESS name, or in an
    ``Actor_NN`` folder that disagrees with their actor field, are skipped and recorded as ``bad_name``.
    """
    root = require_dir(root, "a RAVDESS folder (Actor_NN/MM-VV-EE-II-SS-RR-AA.wav|flac|mp4)")
    modalities = set(modalities)
    channels = set(channels)
    unknown = (modalities - set(MODALITY_CODES.values())) | (channels - set(CHANNEL_CODES.values()))
    if unknown:
        raise ValueError(f"unknown RAVDESS modality or channel: {sorted(unknown)}")
    files = walk_files(root, _EXTS)
    if not files:
        raise DatasetError(root, "no .wav/.flac/.mp4 files; expected Actor_NN/MM-VV-EE-II-SS-RR-AA.<ext>")
    out = Collector(CORPUS, root)
    chosen: dict[str, Path] = {}
    for path in sorted(files, key=lambda p: (_PREFERENCE.index(p.suffix.lower()), str(p))):
        stem = path.stem
        try:
            f = parse_name(stem)
        except ValueError as err:
            out.exclude(path, "bad_name", str(err))
            continue
        folder = _ACTOR_DIR.match(path.parent.name)
        if folder and int(folder.group(1)) != f["actor"]:
            out.exclude(path, "bad_name", f"in folder {path.parent.name} but actor field is {f['actor']:02d}")
            continue
        is_audio_file = path.suffix.lower() in AUDIO_EXTS
        if is_audio_file != (f["modality"] == "audio"):
            out.exclude(path, "bad_name",
                        f"modality field {f['modality_code']} does not fit a {path.suffix} file")
            continue
        if f["modality"] not in modalities or f["vocal_channel"] not in channels:
            continue
        if stem in chosen:
            out.exclude(path, "duplicate", f"same stem as {chosen[stem]}")
            continue
        chosen[stem] = path
        label = to_canonical(CORPUS, f["emotion_code"])
        if label is None:  # cannot happen for RAVDESS, kept for the contract
            out.exclude(path, "unmapped_label", f"emotion {f['emotion_code']} has no canonical class")
            continue
        take_key = f.pop("take_key")
        out.add(Sample(path=path, label=label, speaker=f"{CORPUS}:{f['actor']:02d}", corpus=CORPUS,
                       modality=f.pop("modality"), take=f"{CORPUS}:{take_key}", meta={"stem": stem, **f}))
    return out.finish()


def actor_of(sample: Sample) -> int:
    """The RAVDESS actor number (1..24) of a sample."""
    if sample.corpus != CORPUS:
        raise ValueError(f"{sample.path}: not a RAVDESS sample (corpus {sample.corpus!r})")
    return int(sample.meta.get("actor") or sample.speaker.split(":", 1)[1])


def read_ravdess_au(csv_path: str | Path) -> pd.DataFrame:
    """The clip-level OpenFace AU table (``ravdess-au/au35_clip_means.csv``), indexed by the full-AV key
    ``01-01-EE-II-SS-RR-AA``, with the 35 columns of :data:`AU_COLUMNS` as float32.

    Also accepts the folder that holds the CSV.
    """
    p = Path(csv_path).expanduser()
    if p.is_dir():
        p = p / "au35_clip_means.csv"
    p = require_file(p, "the RAVDESS AU table au35_clip_means.csv (key + 35 AU columns)")
    table = pd.read_csv(p, dtype={"key": str})
    if "key" not in table.columns:
        raise DatasetError(p, f"no 'key' column; columns are {list(table.columns)[:5]}...")
    missing = [c for c in AU_COLUMNS if c not in table.columns]
    if missing:
        raise DatasetError(p, f"missing AU columns {missing}")
    bad = [k for k in table["key"] if not _NAME.match(str(k))]
    if bad:
        raise DatasetError(p, f"{len(bad)} keys are not RAVDESS names, e.g. {bad[:3]}")
    if table["key"].duplicated().any():
        raise DatasetError(p, f"duplicate keys {table['key'][table['key'].duplicated()].tolist()[:5]}")
    return table.set_index("key")[list(AU_COLUMNS)].astype(np.float32)


def au_key(sample: Sample) -> str:
    """The AU table key of a sample's take: ``"01-" + VV-EE-II-SS-RR-AA``."""
    if sample.corpus != CORPUS:
        raise ValueError(f"{sample.path}: not a RAVDESS sample")
    return "01-" + sample.take.split(":", 1)[1]


def pair_ravdess_au(samples: Sequence[Sample], au_table: pd.DataFrame) -> tuple[list[Sample], np.ndarray]:
    """Pair each sample with its take's AU row: audio ``03-01-…`` pairs with key ``01-01-…``.

    Returns the samples (same order) and an ``(n, 35)`` float32 array. Raises :class:`DatasetError`
    listing the keys of samples that have no row.
    """
    samples = list(samples)
    keys = [au_key(s) for s in samples]
    missing = sorted({k for k in keys if k not in au_table.index})
    if missing:
        shown = ", ".join(missing[:20]) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise DatasetError("au_table", f"{len(missing)} takes have no AU row: {shown}")
    features = au_table.loc[keys].to_numpy(dtype=np.float32, copy=True)
    return samples, features


def audio_only_twin(path: str | Path) -> Path | None:
    """The audio-only file (``03-...``, WAV or FLAC) of the same take beside a full-AV or video-only
    RAVDESS file (``01-...`` / ``02-...``), or None when there is none."""
    path = Path(path)
    if path.stem[:2] not in ("01", "02"):
        return None
    for ext in (".wav", ".flac"):
        other = path.with_name("03" + path.stem[2:] + ext)
        if other.is_file():
            return other
    return None
