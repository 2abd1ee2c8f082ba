"""Text from speech: Whisper transcription of real clips (offline, torch-free), words per analysis window, and
the shipped text emotion bundle ``text.carer`` on real CARER sentences."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avemo.labels import EMOTIONS
from avemo.media import read_audio
from avemo.models.bundles import load
from avemo.text.transcribe import Transcriber, Transcript, Word, speech_chunks
from avemo.text.windows import EMOTION_WORD_CONFIDENCE, TEXT_COLUMNS, EmotionWords, assign_words, text_windows

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber(threads=1)


@pytest.fixture(scope="module")
def ravdess_transcript(clips: dict[str, Path], transcriber: Transcriber) -> Transcript:
    return transcriber.transcribe_file(clips["ravdess_wav"])  # actor 19: "Kids are talking by the door"


def _words(t: Transcript) -> list[str]:
    return ["".join(c for c in w.text.lower() if c.isalpha()) for w in t.words]


def test_transcript_of_a_shared_ravdess_clip_has_its_sentence(ravdess_transcript: Transcript) -> None:
    words = _words(ravdess_transcript)
    assert {"kids", "talking", "door"} <= set(words), ravdess_transcript.text
    assert ravdess_transcript.language == "en"
    times = [(w.start, w.end) for w in ravdess_transcript.words]
    assert all(0.0 <= a <= b <= ravdess_transcript.duration + 0.5 for a, b in times)
    assert [a for a, _ in times] == sorted(a for a, _ in times)
    assert words.index("kids") < words.index("talking") < words.index("door")
    seg = ravdess_transcript.segments[0]
    assert seg.language == "en" and 0.5 < seg.language_probability <= 1.0
    assert ravdess_transcript.to_dict()["segments"][0]["words"][0]["word"]


def test_words_keep_their_time_after_leading_silence(clips: dict[str, Path], transcriber: Transcriber,
                                                    ravdess_transcript: Transcript) -> None:
    wave = read_audio(clips["ravdess_wav"], SR)
    silence = np.zeros(10 * SR, np.float32)
    shifted = transcriber.transcribe(np.concatenate([silence, wave, silence[: 3 * SR]]))
    assert {"kids", "talking", "door"} <= set(_words(shifted))
    first = {w: t for w, t in zip(_words(ravdess_transcript), ravdess_transcript.words)}["door"]
    later = {w: t for w, t in zip(_words(shifted), shifted.words)}["door"]
    assert abs((later.start - 10.0) - first.start) < 0.3  # the same word, 10 s later


def test_silence_is_not_transcribed(transcriber: Transcriber) -> None:
    assert transcriber.transcribe(np.zeros(3 * SR, np.float32)).segments == ()
    assert transcriber.transcribe(np.zeros(100, np.float32)).text == ""
    assert transcriber.transcribe(np.zeros(SR, np.float32), speech=[]).language is None
    with pytest.raises(ValueError, match="16000 Hz"):
        transcriber.transcribe(np.zeros(8000, np.float32), sample_rate=8000)


def test_speech_chunks_join_close_intervals_only() -> None:
    chunks = speech_chunks([(1.0, 2.0), (2.5, 4.0), (9.0, 10.0), (20.0, 31.0)], duration=40.0, chunk_s=5.0, pad_s=0.3)
    assert chunks == [(int(0.7 * SR), int(4.3 * SR)), (int(8.7 * SR), int(10.3 * SR)), (int(19.7 * SR), int(31.3 * SR))]
    assert speech_chunks([], duration=3.0, chunk_s=5.0) == []
    assert speech_chunks([(0.0, 3.0)], duration=3.0, chunk_s=5.0) == [(0, 3 * SR)]


def test_vocabulary_decodes_bytes_and_groups_words(transcriber: Transcriber) -> None:
    vocab = transcriber.vocab
    door, kids = vocab.tokens.index("Ġdoor"), vocab.tokens.index("ĠKids")
    assert vocab.decode([kids, door, vocab.eot]) == " Kids door"
    c3, a9 = vocab.tokens.index("Ã"), vocab.tokens.index("©")  # the two bytes of "é"
    assert vocab.decode([c3, a9]) == "é"
    words, groups = vocab.split_words([kids, c3, a9, door], "en")
    assert words == [" Kidsé", " door"] and groups == [[kids, c3, a9], [door]]
    assert vocab.split_words([c3, a9, c3, a9], "zh")[0] == ["é", "é"]
    assert vocab.languages["en"] == vocab.sot + 1 and "zh" in vocab.languages


def test_words_fall_in_every_window_that_holds_their_middle() -> None:
    words = [Word(0.2, 0.6, " I", 1.0, "en"), Word(1.1, 1.5, " feel", 1.0, "en"), Word(2.9, 3.3, " happy", 1.0, "en")]
    groups = assign_words(words, [0.0, 1.0, 2.0, 6.0], [3.0, 4.0, 5.0, 9.0])
    assert [[w.text for w in g] for g in groups] == [[" I", " feel"], [" feel", " happy"], [" happy"], []]


def test_text_windows_score_english_words_and_mark_the_rest() -> None:
    bundle = load("text.carer")
    words = [Word(0.1, 0.5, " I", 1.0, "en"), Word(0.5, 0.9, " feel", 1.0, "en"),
             Word(0.9, 1.5, " so", 1.0, "en"), Word(1.5, 2.4, " happy", 1.0, "en"),
             Word(4.0, 4.4, " Sono", 1.0, "it"), Word(4.4, 5.0, " triste", 1.0, "it")]
    df = text_windows(words, [0.0, 3.0, 6.0], [3.0, 6.0, 9.0], model=bundle.get_model(), labels=bundle.labels,
                      languages=bundle.languages)
    assert tuple(df.columns) == TEXT_COLUMNS
    assert list(df["transcript"]) == ["I feel so happy", "Sono triste", ""]
    assert list(df["text_language"][:2]) == ["en", "it"] and pd.isna(df["text_language"][2])
    assert list(df["text_words"]) == [4, 2, 0]
    probs = df[[f"text_{e}" for e in EMOTIONS]].to_numpy()
    assert np.isclose(probs[0].sum(), 1.0, atol=1e-5) and EMOTIONS[int(probs[0].argmax())] == "happy"
    assert probs[0][[EMOTIONS.index(e) for e in ("neutral", "calm", "disgust")]].max() == 0.0  # not in CARER
    assert np.isnan(probs[1]).all() and np.isnan(probs[2]).all()  # Italian is not scored; no words, no text
    assert df["text_emotion_words"].isna().all()  # no lexicon given: no count


def test_emotion_words_are_the_words_the_model_reads_as_an_emotion_alone() -> None:
    bundle = load("text.carer")
    model = bundle.get_model()
    lexicon = EmotionWords.of(bundle, model)
    assert lexicon is not None and {"happy", "angry", "terrified"} <= lexicon.lexicon
    assert not {"the", "door", "kids", "dogs", "talking", "meeting"} & lexicon.lexicon
    top = np.exp(model(sorted(lexicon.lexicon)))
    assert (top.max(1) / top.sum(1) >= EMOTION_WORD_CONFIDENCE - 1e-6).all()  # what the definition says
    some = bundle.vocabulary()[:1500]  # the shortcut (a weight column per word) against sentences of one word
    assert EmotionWords(model, some).lexicon == lexicon.lexicon & set(some)
    assert list(lexicon.count(["Kids are talking by the door", "I'm so HAPPY, happy!", "", "angry?"])) == [0, 2, 0, 0]
    # counted where they state the speaker's feeling (after a feel-verb or the first person), not where they judge
    said = ["It makes me angry", "We felt terrified", "This is a dirty trick", "That was an unpleasant surprise for me",
            "Happy, I am"]
    assert list(lexicon.count(said)) == [1, 1, 0, 0, 0]
    words = [Word(0.1, 0.5, " I", 1.0, "en"), Word(0.5, 0.9, " feel", 1.0, "en"),
             Word(0.9, 1.5, " terrified", 1.0, "en"), Word(4.0, 4.4, " Sono", 1.0, "it"),
             Word(4.4, 5.0, " triste", 1.0, "it"), Word(6.1, 6.5, " the", 1.0, "en"),
             Word(6.5, 7.0, " door", 1.0, "en")]
    df = text_windows(words, [0.0, 3.0, 6.0, 9.0], [3.0, 6.0, 9.0, 12.0], model=model, labels=bundle.labels,
                      languages=bundle.languages, emotion_words=lexicon)
    counts = df["text_emotion_words"].to_numpy()
    assert counts[0] == 1 and counts[2] == 0 and np.isnan(counts[1]) and np.isnan(counts[3])  # unscored: NaN


def test_windows_of_a_real_transcript(ravdess_transcript: Transcript) -> None:
    bundle = load("text.carer")
    starts = np.arange(0.0, 3.0, 1.0)
    df = text_windows(ravdess_transcript.words, starts, starts + 3.0, model=bundle.get_model(), labels=bundle.labels)
    spoken = df["text_words"].to_numpy() > 0
    assert spoken.any() and "door" in " ".join(df["transcript"]).lower()
    probs = df.loc[spoken, [f"text_{e}" for e in EMOTIONS]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_text_carer_bundle_scores_carer_test_as_its_card_says(data: Path) -> None:
    bundle = load("text.carer")
    assert bundle.kind == "text" and bundle.languages == ("en",)
    assert set(bundle.labels) == {"happy", "sad", "angry", "fearful", "surprised"}
    assert "research" in bundle.card and "English" in bundle.card
    names = {"sadness": "sad", "joy": "happy", "anger": "angry", "fear": "fearful", "surprise": "surprised"}
    lines = (data / "text-emotion-carer" / "test.txt").read_text().splitlines()
    pairs = [line.rsplit(";", 1) for line in lines]
    texts = [t for t, lab in pairs if lab in names]
    truth = [names[lab] for t, lab in pairs if lab in names]
    pred = np.array(bundle.labels)[bundle.get_model()(texts).argmax(1)]
    accuracy = float(np.mean(pred == np.array(truth)))
    assert accuracy == pytest.approx(bundle.meta["test_accuracy"], abs=1e-4)
    assert accuracy >= 0.90
    # the transcript's way of writing (capitals, apostrophes, punctuation) reads as CARER's
    model = bundle.get_model()
    np.testing.assert_allclose(model(["I didn't feel humiliated!"]), model(["i didnt feel humiliated"]), atol=1e-6)


def test_transcription_and_text_scoring_import_no_torch(clips: dict[str, Path]) -> None:
    code = f"""
        import sys
        from avemo.models.bundles import load
        from avemo.text.transcribe import Transcriber
        from avemo.text.windows import text_windows
        t = Transcriber().transcribe_file({str(clips["cremad_hap"])!r})
        b = load("text.carer")
        df = text_windows(t.words, [0.0], [3.0], model=b.get_model(), labels=b.labels, languages=b.languages)
        print("TEXT", t.text, "|", df["transcript"][0])
        print("TORCH", sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
        """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TORCH []" in proc.stdout
    assert "forget" in proc.stdout.lower()  # "Don't forget a jacket"


def test_an_analyzer_with_other_settings_shares_the_loaded_models():
    """``Analyzer.with_settings``: a warm analyzer's networks and Whisper model serve the new one (``avemo serve``
    keeps one analyzer per job option); another language reuses the loaded Whisper model; an unknown one is
    refused with the code named."""
    from avemo.errors import AvemoError
    from avemo.inference.analyzer import Analyzer

    warm = Analyzer("default", text=True, language="en")
    warm.face_model, warm.voice_model, warm.text_model  # noqa: B018
    german = warm.with_settings(language="de", window=2.0)
    assert german.face_model is warm.face_model and german.voice_model is warm.voice_model
    assert german.text_model.transcriber._model is warm.text_model.transcriber._model
    assert (german.text_model.transcriber.language, warm.text_model.transcriber.language) == ("de", "en")
    assert german.config.window == 2.0 and german.config.text and german.fusion is warm.fusion
    assert warm.with_settings(face_tta="none").face_model is not warm.face_model  # other views: its own network
    assert warm.with_settings(face_tta="flip").face_model is warm.face_model  # "alternate" runs the flip network
    with pytest.raises(AvemoError, match="'xx'"):
        warm.with_settings(language="xx")
