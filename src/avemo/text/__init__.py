"""What is said: speech to words (Whisper, offline, on CTranslate2) and words to emotions (a text bundle).

Dataflow::

    16 kHz speech ──► Transcriber (Whisper base, language detected, word times) ──► Transcript
    Transcript.words + analysis windows ──► text_windows ──► per window: its words, text_* probabilities

:class:`WindowText` does both with models loaded once. Nothing here imports torch.
"""

from avemo.text.transcribe import Segment, Transcriber, Transcript, Word
from avemo.text.windows import TEXT_COLUMNS, WindowText, assign_words, text_windows

__all__ = ["TEXT_COLUMNS", "Segment", "Transcriber", "Transcript", "WindowText", "Word", "assign_words",
           "text_windows"]
