"""Whisper's token vocabulary: ids to text, special tokens, and tokens grouped into words (no dependency).

Whisper uses GPT-2's byte-level BPE: every token is a string of printable stand-ins for bytes
(``Ġ`` for a space, ...). Decoding needs only the vocabulary (``vocabulary.txt`` of the CTranslate2
conversion, one token per line, line ``i`` = id ``i``) and the byte map below; encoding text is never
needed here (prompts are special tokens only), so no tokenizer library is loaded.
"""

from __future__ import annotations

import os
import string
from functools import cache
from pathlib import Path

from avemo.errors import ModelError

#: Languages written without spaces between words: their words are single characters (as Whisper does).
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
_PUNCTUATION = frozenset(string.punctuation + "。，、！？：；「」『』（）—…¿¡“”‘’")


@cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's ``bytes_to_unicode`` inverted: stand-in character -> byte."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars)}


class WhisperVocabulary:
    """The vocabulary of a multilingual Whisper model (``vocabulary.txt``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.tokens = self.path.read_text(encoding="utf-8").split("\n")
        except OSError as err:
            raise ModelError(f"{self.path}: cannot read the Whisper vocabulary ({err.strerror})") from None
        if self.tokens and self.tokens[-1] == "":
            self.tokens.pop()
        ids = {t: i for i, t in enumerate(self.tokens) if t.startswith("<|") and t.endswith("|>")}
        try:
            self.eot = ids["<|endoftext|>"]
            self.sot = ids["<|startoftranscript|>"]
            self.transcribe = ids["<|transcribe|>"]
            self.translate = ids["<|translate|>"]
            self.sot_prev = ids["<|startofprev|>"]
            self.no_speech = ids["<|nocaptions|>"]
            self.no_timestamps = ids["<|notimestamps|>"]
            self.timestamp_begin = ids["<|0.00|>"]
        except KeyError as err:
            raise ModelError(f"{self.path}: not a multilingual Whisper vocabulary (no {err.args[0]} token)") from None
        #: language code -> token id, in the model's order (``en``, ``zh``, ...)
        self.languages = {t[2:-2]: i for t, i in ids.items() if self.sot < i < self.translate}

    def __len__(self) -> int:
        return len(self.tokens)

    def decode(self, ids: list[int]) -> str:
        """The text of the text tokens among ``ids`` (special and timestamp tokens are dropped)."""
        table = _byte_decoder()
        raw = bytes(table[c] for i in ids if i < self.eot for c in self.tokens[i])
        return raw.decode("utf-8", errors="replace")

    def split_words(self, ids: list[int], language: str) -> tuple[list[str], list[list[int]]]:
        """Text tokens grouped into words: ``(words, tokens of each word)``; a word keeps its leading space.

        Tokens are first grouped into whole characters (a character may span tokens); then, for languages
        written with spaces, a new word starts at a leading space or a punctuation mark.
        """
        ids = [i for i in ids if i < self.eot]
        full = self.decode(ids)
        units: list[str] = []
        unit_tokens: list[list[int]] = []
        current: list[int] = []
        offset = 0
        for i in ids:
            current.append(i)
            text = self.decode(current)
            bad = text.find("\ufffd")
            if bad < 0 or full[offset + bad:offset + bad + 1] == "\ufffd":  # whole, or a real U+FFFD
                units.append(text)
                unit_tokens.append(current)
                current = []
                offset += len(text)
        if current:  # a character cut at the end
            units.append(self.decode(current))
            unit_tokens.append(current)
        if language in NO_SPACE_LANGUAGES:
            return units, unit_tokens
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for text, toks in zip(units, unit_tokens):
            starts_word = text.startswith(" ") or text.strip() in _PUNCTUATION or not words
            if starts_word:
                words.append(text)
                word_tokens.append(list(toks))
            else:
                words[-1] += text
                word_tokens[-1].extend(toks)
        return words, word_tokens
