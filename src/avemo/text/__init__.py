"""What is said: speech to words (Whisper, offline, on CTranslate2) and words to emotions (a text bundle).

Dataflow::

    16 kHz speech ──► transcribe (Whisper base, language detected, word times) ──► Transcript
    Transcript + analysis windows ──► window_words ──► per window: its words, text_* probabilities
"""
