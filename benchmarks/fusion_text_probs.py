"""The text model's probabilities on CARER validation and test sentences, for the fusion benchmark's triples.

    PYTHONPATH=<a tree whose avemo ships text.carer>/src python benchmarks/fusion_text_probs.py

Runs the ``text.carer`` bundle (its numpy runtime) on ``text-emotion-carer/{val,test}.txt`` (sentences whose
label has a canonical class; ``love`` has none) and writes ``benchmarks/results/fusion_crossdomain/
text_carer_probs.csv.gz``: split, row (line number in the file), label, then one probability column per class
of the bundle, then ``emotion_words`` (how many words of the sentence the model reads as an emotion on their own:
:class:`avemo.text.windows.EmotionWords`, the fusion's text evidence). Validation rows are what fusion fitting may
use, test rows what the report scores. Also the two
sentences every RAVDESS take says (split ``ravdess_statement``, row = statement 1 or 2, no label): words that
carry no emotion, the case a transcript of acted speech is.

    python benchmarks/fusion_text_probs.py --spoken

writes instead ``spoken_transcripts.csv.gz``: every SAVEE clip (British English, TIMIT sentences) transcribed
by :class:`avemo.text.transcribe.Transcriber` (Whisper base, as ``avemo analyze --text`` does), its language and
``text.carer``'s probabilities of the transcript (NaN where it is empty or not English, as the analyzer leaves
them) and its emotion-word count (NaN there too), its word count but not its words (corpus content stays out
of the repository): a second corpus of everyday words (TIMIT sentences, a few chosen to suit each emotion), from
other speakers and sentences than RAVDESS's.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

import avemo
from avemo.config import data_root
from avemo.datasets import read_carer
from avemo.provenance import git_commit
from avemo.text.windows import EmotionWords

OUT = Path(__file__).resolve().parent / "results" / "fusion_crossdomain"
os.chdir(Path(avemo.__file__).resolve().parents[2])  # git_commit: the tree the bundle comes from


def spoken() -> None:
    """SAVEE's clips transcribed and their transcripts scored (see the module docstring)."""
    from avemo.datasets.speech import read_speech_corpora
    from avemo.text.transcribe import Transcriber

    bundle = avemo.load("text.carer")
    model = bundle.get_model()
    emotion_words = EmotionWords.of(bundle, model)
    transcriber = Transcriber(threads=2)
    samples = read_speech_corpora(["savee"])
    rows, t0 = [], time.time()
    for k, s in enumerate(samples):
        t = transcriber.transcribe_file(s.path)
        text, language = t.text.strip(), t.language
        row = {"corpus": "savee", "path": Path(s.path).relative_to(data_root()).as_posix(), "label": s.label,
               "words": len(text.split()), "language": language or ""}  # the words themselves stay out of the repo
        ok = bool(text) and language in bundle.languages
        z = np.asarray(model([text.lower()]), dtype=np.float64)[0] if ok else np.full(len(bundle.labels), np.nan)
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum() if ok else z
        row.update({name: round(float(p[j]), 5) for j, name in enumerate(bundle.labels)})
        row["emotion_words"] = int(emotion_words.count([text])[0]) if ok else np.nan
        rows.append(row)
        if k % 50 == 0:
            print(f"{k}/{len(samples)} {time.time() - t0:.0f} s: {text!r} ({language})", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(OUT / "spoken_transcripts.csv.gz", index=False)
    info = {"bundle": bundle.name, "bundle_sha256": bundle.files["weights"].sha256, "source_commit": git_commit(),
            "transcriber": "avemo.text.transcribe.Transcriber(threads=2): Whisper base, CTranslate2 int8, greedy",
            "command": "python benchmarks/fusion_text_probs.py --spoken", "clips": len(df),
            "english": int((df.language == "en").sum()), "seconds": round(time.time() - t0)}
    (OUT / "spoken_transcripts.json").write_text(json.dumps(info, indent=1) + "\n")
    print("wrote", OUT / "spoken_transcripts.csv.gz", info)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spoken", action="store_true", help="transcribe SAVEE and score the transcripts instead")
    if ap.parse_args().spoken:
        spoken()
        return
    bundle = avemo.load("text.carer")
    model = bundle.get_model()
    emotion_words = EmotionWords.of(bundle, model)
    corpus = read_carer(data_root() / "text-emotion-carer", splits=("val", "test"))
    rows = []
    for split in ("val", "test"):
        samples = [s for s in corpus if s.split == split and s.label in bundle.labels]
        texts = [s.text for s in samples]
        z = np.asarray(model(texts), dtype=np.float64)
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        df = pd.DataFrame({"split": split, "row": [s.meta["row"] for s in samples],
                           "label": [s.label for s in samples]})
        for j, name in enumerate(bundle.labels):
            df[name] = np.round(p[:, j], 5)
        df["emotion_words"] = emotion_words.count(texts)
        rows.append(df)
        truth = [bundle.labels.index(s.label) for s in samples]
        print(split, len(df), "accuracy", float(np.mean(p.argmax(1) == truth)))
    statements = ["Kids are talking by the door", "Dogs are sitting by the door"]  # RAVDESS statements 01, 02
    z = np.asarray(model([t.lower() for t in statements]), dtype=np.float64)
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    df = pd.DataFrame({"split": "ravdess_statement", "row": [1, 2], "label": ""})
    for j, name in enumerate(bundle.labels):
        df[name] = np.round(p[:, j], 5)
    df["emotion_words"] = emotion_words.count(statements)
    rows.append(df)
    OUT.mkdir(parents=True, exist_ok=True)
    out = pd.concat(rows, ignore_index=True)
    out.attrs["bundle"] = bundle.name
    out.to_csv(OUT / "text_carer_probs.csv.gz", index=False)
    info = {"bundle": bundle.name, "bundle_sha256": bundle.files["weights"].sha256, "source": str(bundle.path),
            "source_commit": git_commit(),
            "command": "python benchmarks/fusion_text_probs.py"}
    (OUT / "text_carer_probs.json").write_text(json.dumps(info, indent=1) + "\n")
    print("wrote", OUT / "text_carer_probs.csv.gz", info)


if __name__ == "__main__":
    main()
