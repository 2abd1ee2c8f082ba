"""eNTERFACE'05 (Martin et al. 2006): 42-44 subjects, 6 emotions, 5 sentences each, ``.avi`` with audio.

Published layout: ``subject N/<emotion>/sentence M/sN_<code>_M.avi`` with emotion folders ``anger
disgust fear happiness sadness surprise`` and codes ``an di fe ha sa su`` (``s1_an_1.avi``).

Known irregularities, all handled:

* subject 6 keeps its clips directly in the emotion folders (no ``sentence M`` level), and some copies
  spell folders differently (``Subject 6``, ``Happiness``, ``sentence_1``): folders are matched
  case-insensitively with a space, ``_`` or ``-`` (or nothing) before the number, at any depth;
* file names vary (``s_3_an_1.avi``, ``S6_AN_1.AVI``): the subject comes from the ``subject N`` folder,
  the emotion from the emotion folder (else the file's code), the sentence from the ``sentence M``
  folder (else the file's last number). A folder emotion that disagrees with the file's code is a
  ``bad_label`` exclusion, never a silent choice.
"""

from __future__ import annotations

import re
from pathlib import Path

from avemo.datasets.base import Collector, Corpus, Sample, require_dir, walk_files
from avemo.errors import DatasetError
from avemo.labels import to_canonical

CORPUS = "enterface"
FOLDERS = {"anger": "an", "disgust": "di", "fear": "fe", "happiness": "ha", "sadness": "sa", "surprise": "su"}
CODES = {v: k for k, v in FOLDERS.items()}
_SUBJECT = re.compile(r"^subject[\s_-]*(\d+)$", re.IGNORECASE)
_SENTENCE = re.compile(r"^sentence[\s_-]*(\d+)$", re.IGNORECASE)
_FILE = re.compile(r"^s[\s_-]*(\d+)[\s_-]+([a-z]{2})[\s_-]*(\d+)$", re.IGNORECASE)


def read_enterface(root: str | Path) -> Corpus:
    """Read eNTERFACE'05 under ``root`` (the folder holding the ``subject N`` folders)."""
    root = require_dir(root, "an eNTERFACE'05 folder (subject N/<emotion>/sentence M/*.avi)")
    subjects = [d for d in sorted(root.rglob("*")) if d.is_dir() and _SUBJECT.match(d.name)]
    if not subjects:
        raise DatasetError(root, "no 'subject N' folders; "
                                 "expected subject N/<emotion>/sentence M/sN_xx_M.avi")
    out = Collector(CORPUS, root)
    seen: set[Path] = set()
    for subject_dir in subjects:
        subject = int(_SUBJECT.match(subject_dir.name).group(1))
        for path in walk_files(subject_dir, {".avi", ".mp4"}):
            if path in seen:  # a subject folder nested in another one
                continue
            seen.add(path)
            rel = path.relative_to(subject_dir).parts[:-1]
            folder_code = next((FOLDERS[p.lower()] for p in rel if p.lower() in FOLDERS), None)
            sentence_m = next((m for m in (_SENTENCE.match(p) for p in rel) if m), None)
            file_m = _FILE.match(path.stem)
            file_code = file_m.group(2).lower() if file_m else None
            if file_code is not None and file_code not in CODES:
                file_code = None if folder_code else file_code
            if folder_code and file_code and folder_code != file_code:
                out.exclude(path, "bad_label",
                            f"folder says {CODES[folder_code]} but the name says {file_code}")
                continue
            code = folder_code or file_code
            if code is None:
                out.exclude(path, "bad_name", "no emotion folder and no emotion code in the name")
                continue
            if code not in CODES:
                out.exclude(path, "bad_label", f"unknown eNTERFACE emotion code {code!r}")
                continue
            if sentence_m:
                sentence = int(sentence_m.group(1))
            elif file_m:
                sentence = int(file_m.group(3))
            else:
                out.exclude(path, "bad_name", "no 'sentence M' folder and no sentence number in the name")
                continue
            label = to_canonical(CORPUS, code)
            if label is None:
                out.exclude(path, "unmapped_label", f"{code} has no canonical class")
                continue
            out.add(Sample(path=path, label=label, speaker=f"{CORPUS}:{subject}", corpus=CORPUS,
                           modality="av",
                           take=f"{CORPUS}:{subject}:{code}:{sentence}",
                           meta={"subject": subject, "sentence": sentence, "emotion_raw": CODES[code]}))
    for path in walk_files(root, {".avi", ".mp4"}):
        if path not in seen:
            out.exclude(path, "bad_name", "not under a 'subject N' folder")
    return out.finish()
