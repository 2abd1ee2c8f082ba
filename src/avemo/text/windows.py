"""Words per analysis window, and the text emotion model's probabilities for each window's words.

A word belongs to every window that holds its middle (windows may overlap). A window's words are
joined into one sentence and scored by a text bundle (``get_model()``: sentences -> logits over its
labels), then re-expressed over :data:`avemo.labels.EMOTIONS` (classes the model lacks get 0: the CARER
model has no neutral, calm or disgust). A window without words, or whose words are in a language the
bundle does not serve (its ``languages``; CARER is English), gets NaN probabilities; its words and
their language are still given.

Most of what people say carries no emotion in its words ("the meeting is at three"), yet a text model trained
on emotional sentences (CARER has no neutral class) still names one. So each window also counts its *emotion
words* (:class:`EmotionWords`): words the text model, given that word alone, reads as one class with
probability >= 0.99 (``text.carer``: 329 of its 14,372 words, *happy*, *terrified*, *annoyed* ...), counted only
where they state the speaker's feeling: after a feel-verb or a first-person word (:data:`FEELING_CUES`) earlier in
the window's words. CARER's sentences are such statements ("i feel ..."): 93.9 % of its validation sentences
(love aside) hold a counted word, 94.0 % an emotion word at all. Scripted or everyday sentences use the same words
to judge things ("a dirty trick", "an unpleasant surprise"), where the text model is off its ground: SAVEE's
transcripts opened the gate on 49 of 441 clips for such words and the text was right on 8. RAVDESS's two statements
hold none. The fusion weighs the text by the count and gates it at 0.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from avemo.labels import EMOTIONS, project_probs
from avemo.models.text import TextLinearModel, clean_text
from avemo.text.transcribe import Transcriber, Transcript, Word

__all__ = ["EMOTION_WORD_CONFIDENCE", "FEELING_CUES", "TEXT_COLUMNS", "EmotionWords", "WindowText", "assign_words",
           "text_windows"]

#: the columns :func:`text_windows` returns, in order
TEXT_COLUMNS: tuple[str, ...] = ("transcript", "text_language", "text_words", "text_emotion_words",
                                 *(f"text_{e}" for e in EMOTIONS))
#: a word is an emotion word when the text model, given it alone, names a class with at least this probability
EMOTION_WORD_CONFIDENCE = 0.99
#: words (as the text model cleans them) after which an emotion word states the speaker's feeling: the feel-verbs
#: and the first person ("i feel ...", "im so happy", "it makes me angry")
FEELING_CUES = frozenset({"feel", "feels", "feeling", "feelings", "felt", "i", "im", "ive", "id", "me", "myself",
                          "we", "weve", "wed"})


def assign_words(words: Sequence[Word], starts: Sequence[float], ends: Sequence[float]) -> list[list[Word]]:
    """For each window ``[start, end)``, the words whose middle lies in it, in time order."""
    starts_a = np.asarray(starts, dtype=np.float64)
    ends_a = np.asarray(ends, dtype=np.float64)
    if starts_a.shape != ends_a.shape:
        raise ValueError(f"{starts_a.size} window starts but {ends_a.size} ends")
    ordered = sorted(words, key=lambda w: (w.start, w.end))
    mids = np.array([(w.start + w.end) / 2 for w in ordered], dtype=np.float64)
    out: list[list[Word]] = []
    for a, b in zip(starts_a, ends_a):
        lo, hi = np.searchsorted(mids, a, side="left"), np.searchsorted(mids, b, side="left")
        out.append(ordered[lo:hi])
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class EmotionWords:
    """The words of a text model's vocabulary that it reads as an emotion on their own (module docstring), and
    how many of them a sentence holds where they state a feeling (after a :data:`FEELING_CUES` word). ``model``:
    sentences -> logits (a text bundle's ``get_model()``)."""

    def __init__(self, model: Callable[[list[str]], np.ndarray], vocabulary: Sequence[str],
                 threshold: float = EMOTION_WORD_CONFIDENCE) -> None:
        words = list(vocabulary)
        if isinstance(model, TextLinearModel) and model.ngram_max == 1 and model.vocabulary == tuple(words):
            # a one-word sentence's TF-IDF row is that word's unit vector: its logits are a column of the weights
            logits = model.weight.T.astype(np.float64) + model.bias
        else:
            logits = np.asarray(model(words), dtype=np.float64) if words else np.zeros((0, 1))
        top = _softmax(logits).max(axis=1)
        self.lexicon = frozenset(w for w, p in zip(words, top) if p >= threshold)

    @classmethod
    def of(cls, bundle: Any, model: Callable[[list[str]], np.ndarray] | None = None) -> EmotionWords | None:
        """For a text bundle with a word vocabulary; None for one with hashed features (no words to read)."""
        vocabulary = bundle.vocabulary()
        return None if vocabulary is None else cls(model or bundle.get_model(), vocabulary)

    def count(self, sentences: Sequence[str]) -> np.ndarray:
        """How many emotion words each sentence holds after a feeling cue (:data:`FEELING_CUES`, anywhere
        before; words as the model cleans them; repeats count)."""
        return np.array([self._count(clean_text(s).split()) for s in sentences], dtype=np.int64)

    def _count(self, words: list[str]) -> int:
        n, cued = 0, False
        for w in words:
            n += cued and w in self.lexicon
            cued = cued or w in FEELING_CUES
        return n


def text_windows(words: Sequence[Word], starts: Sequence[float], ends: Sequence[float], *,
                 model: Callable[[list[str]], np.ndarray], labels: Sequence[str],
                 languages: Sequence[str] = ("en",), emotion_words: EmotionWords | None = None) -> pd.DataFrame:
    """One row per window (:data:`TEXT_COLUMNS`): ``transcript`` (its words, '' when none), ``text_language``
    (the language of most of its words, missing when none), ``text_words`` (how many), ``text_emotion_words``
    (how many of them are emotion words stating a feeling, :meth:`EmotionWords.count`; NaN where the text is not
    scored or ``emotion_words`` is None) and
    ``text_<emotion>`` for every canonical emotion (NaN without words or in a language not in ``languages``).

    ``model`` turns sentences into logits over ``labels`` (a text bundle's ``get_model()``).
    """
    groups = assign_words(words, starts, ends)
    n = len(groups)
    probs = np.full((n, len(EMOTIONS)), np.nan, dtype=np.float32)
    emotional = np.full(n, np.nan)
    transcript = np.array(["".join(w.text for w in g).strip() for g in groups], dtype=object)
    language: list[Any] = [Counter(w.language for w in g).most_common(1)[0][0] if g else None for g in groups]
    served = set(languages)
    rows = [i for i in range(n) if groups[i] and language[i] in served and transcript[i]]
    if rows:
        logits = np.asarray(model([str(transcript[i]) for i in rows]), dtype=np.float64)
        if logits.shape != (len(rows), len(labels)):
            raise ValueError(f"the text model gave logits of shape {logits.shape}, expected ({len(rows)}, "
                             f"{len(labels)}) for labels {tuple(labels)}")
        probs[rows] = project_probs(_softmax(logits).astype(np.float32), labels, EMOTIONS)
        if emotion_words is not None:
            emotional[rows] = emotion_words.count([str(transcript[i]) for i in rows])
    cols: dict[str, Any] = {"transcript": transcript, "text_language": np.array(language, dtype=object),
                            "text_words": np.array([len(g) for g in groups], dtype=np.int64),
                            "text_emotion_words": emotional}
    cols.update({f"text_{e}": probs[:, j] for j, e in enumerate(EMOTIONS)})
    return pd.DataFrame(cols, columns=list(TEXT_COLUMNS))


class WindowText:
    """Speech to per-window text emotions in one call, for the analyzer: a :class:`Transcriber` and a text
    bundle, loaded once. ``__call__(wave, starts, ends, speech=None)`` -> ``(transcript, columns)``."""

    def __init__(self, bundle: str = "text.carer", *, threads: int = 1, **transcriber: Any) -> None:
        from avemo.models.bundles import load

        self.bundle = load(bundle)
        if self.bundle.kind != "text":
            raise ValueError(f"{self.bundle.name} is a {self.bundle.kind} bundle, not a text one")
        self.model = self.bundle.get_model()
        self.emotion_words = EmotionWords.of(self.bundle, self.model)
        self.transcriber = Transcriber(threads=threads, **transcriber)

    def with_language(self, language: str | None) -> WindowText:
        """The same models, for speech in ``language`` (None: detected)."""
        other = copy.copy(self)
        other.transcriber = self.transcriber.with_language(language)
        return other

    def utterance(self, wave: np.ndarray) -> tuple[str, np.ndarray | None, float]:
        """One utterance as a whole (live analysis; 16 kHz, cut at pauses by the caller): its words, their emotions
        over :data:`EMOTIONS` (None without words or in a language the text bundle does not serve) and how many
        state a feeling (NaN then)."""
        wave = np.asarray(wave, dtype=np.float32).reshape(-1)
        transcript = self.transcriber.transcribe(wave, speech=[(0.0, wave.size / 16000)])  # already cut at pauses
        return self.sentence(transcript.text, transcript.language)

    def sentence(self, text: str, language: str | None) -> tuple[str, np.ndarray | None, float]:
        """:meth:`utterance` for words already transcribed."""
        if not text or language not in self.bundle.languages:
            return text, None, float("nan")
        logits = np.asarray(self.model([text]), dtype=np.float64)
        probs = project_probs(_softmax(logits).astype(np.float32), self.bundle.labels, EMOTIONS)[0]
        count = float(self.emotion_words.count([text])[0]) if self.emotion_words is not None else float("nan")
        return text, probs, count

    def __call__(self, wave: np.ndarray, starts: Sequence[float], ends: Sequence[float], *,
                 speech: Sequence[tuple[float, float]] | None = None) -> tuple[Transcript, pd.DataFrame]:
        """``wave``: mono 16 kHz; ``speech``: the analyzer's voice-activity intervals (seconds), if it has them."""
        transcript = self.transcriber.transcribe(wave, speech=speech)
        return transcript, text_windows(transcript.words, starts, ends, model=self.model, labels=self.bundle.labels,
                                        languages=self.bundle.languages, emotion_words=self.emotion_words)
