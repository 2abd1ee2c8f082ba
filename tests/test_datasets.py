"""Corpus readers: the real RAVDESS, AU table, FER-2013 and CARER data, and small trees in the published
layouts for the corpora that are not on this machine."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from avemo.datasets import (
    Sample,
    load_fer_image,
    pair_ravdess_au,
    read_baum1s,
    read_carer,
    read_corpus,
    read_cremad,
    read_enterface,
    read_fer2013,
    read_manifest,
    read_mead,
    read_meld,
    read_ravdess,
    read_ravdess_au,
    read_savee,
)
from avemo.errors import DatasetError
from avemo.labels import EMOTIONS


def touch(root: Path, *rels: str) -> None:
    """Empty placeholder files (readers that only parse names need nothing more)."""
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


# -- RAVDESS ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ravdess(data: Path):
    return read_ravdess(data / "ravdess-speech-16k")


def test_ravdess_real_counts(ravdess) -> None:
    assert len(ravdess) == 1440
    assert not ravdess.excluded
    assert len(ravdess.speakers()) == 24
    counts = ravdess.label_counts()
    assert set(counts) == set(EMOTIONS)
    assert counts["neutral"] == 96
    assert all(counts[e] == 192 for e in EMOTIONS if e != "neutral")
    assert {s.modality for s in ravdess} == {"audio"}
    assert all(s.speaker.startswith("ravdess:") and s.corpus == "ravdess" for s in ravdess)
    assert len({s.take for s in ravdess}) == 1440  # one audio file per take
    per_actor = {spk: sum(s.speaker == spk for s in ravdess) for spk in ravdess.speakers()}
    assert set(per_actor.values()) == {60}


def test_ravdess_fields(ravdess) -> None:
    s = next(s for s in ravdess if s.path.stem == "03-01-08-02-01-01-19")
    assert s.label == "surprised" and s.speaker == "ravdess:19" and s.take == "ravdess:01-08-02-01-01-19"
    assert s.meta["gender"] == "male" and s.meta["intensity"] == "strong" and s.meta["statement"] == 1
    assert s.meta["repetition"] == 1 and s.meta["vocal_channel"] == "speech"
    assert s.path.suffix == ".flac"


def test_ravdess_original_layout_any_depth(data: Path, tmp_path: Path) -> None:
    clips = data / "clips" / "ravdess"
    deep = tmp_path / "Video_Speech" / "Actor_19"
    deep.mkdir(parents=True)
    os.symlink(clips / "01-01-08-02-01-01-19.mp4", deep / "01-01-08-02-01-01-19.mp4")
    audio = tmp_path / "Audio_Speech_Actors_01-24" / "Actor_19"
    audio.mkdir(parents=True)
    os.symlink(clips / "03-01-08-02-01-01-19.wav", audio / "03-01-08-02-01-01-19.wav")
    corpus = read_ravdess(tmp_path)
    assert len(corpus) == 2
    assert {s.modality for s in corpus} == {"av", "audio"}
    assert len({s.take for s in corpus}) == 1  # the video and its audio are one take
    only_av = read_ravdess(tmp_path, modalities=("av",))
    assert [s.modality for s in only_av] == ["av"]


def test_ravdess_bad_names_are_skipped_and_counted(tmp_path: Path, caplog) -> None:
    touch(tmp_path, "Actor_01/03-01-01-01-01-01-01.wav", "Actor_01/03-01-01-01-01-01-01.flac",
          "Actor_01/03-02-03-02-02-02-01.wav", "Actor_01/02-01-05-01-01-01-01.mp4",
          "Actor_01/notes.wav", "Actor_01/03-01-09-01-01-01-01.wav", "Actor_01/03-01-01-02-01-01-01.wav",
          "Actor_01/03-01-02-01-01-01-25.wav", "Actor_02/03-01-02-01-01-01-03.wav",
          "Actor_01/03-01-02-01-01-01-01.mp4", "Actor_01/readme.txt")
    with caplog.at_level(logging.WARNING, logger="avemo.datasets"):
        corpus = read_ravdess(tmp_path)
    assert [s.path.name for s in corpus] == ["02-01-05-01-01-01-01.mp4", "03-01-01-01-01-01-01.wav",
                                              "03-02-03-02-02-02-01.wav"]
    assert corpus.excluded_counts() == {"bad_name": 6, "duplicate": 1}
    reasons = {Path(e.path).name: e.reason for e in corpus.excluded}
    assert "emotion 09" in reasons["03-01-09-01-01-01-01.wav"]
    assert "neutral has no strong" in reasons["03-01-01-02-01-01-01.wav"]
    assert "Actor_02" in reasons["03-01-02-01-01-01-03.wav"]
    assert "left out" in caplog.text
    speech = read_ravdess(tmp_path, channels=("speech",), modalities=("audio",))
    assert [s.path.name for s in speech] == ["03-01-01-01-01-01-01.wav"]


def test_missing_root_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nowhere.*expected"):
        read_ravdess(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="no .wav"):
        read_ravdess(tmp_path)
    with pytest.raises(DatasetError, match="unknown corpus"):
        read_corpus("iemocap", tmp_path)
    with pytest.raises(DatasetError, match="no default location"):
        read_corpus("manifest")
    for reader in (read_cremad, read_enterface, read_baum1s, read_savee, read_mead, read_meld, read_fer2013):
        with pytest.raises(DatasetError, match=str(tmp_path)):
            reader(tmp_path / "absent")


def test_read_corpus_default_roots(data: Path, tmp_path: Path, monkeypatch) -> None:
    assert len(read_corpus("ravdess", modalities=("audio",))) == 1440
    monkeypatch.setenv("AVEMO_DATA", str(tmp_path))
    touch(tmp_path, "savee/AudioData/DC/a01.wav")
    assert len(read_corpus("savee")) == 1
    with pytest.raises(DatasetError, match="crema-d"):
        read_corpus("CREMA-D")


# -- RAVDESS facial action units ------------------------------------------------------------------------

def test_au_table_pairs_with_every_audio_file(data: Path, ravdess) -> None:
    table = read_ravdess_au(data / "ravdess-au" / "au35_clip_means.csv")
    assert table.shape == (1440, 35) and table.index[0].startswith("01-01-")
    samples, feats = pair_ravdess_au(ravdess, table)
    assert feats.shape == (1440, 35) and feats.dtype == np.float32 and np.isfinite(feats).all()
    i = next(i for i, s in enumerate(samples) if s.path.stem == "03-01-05-02-02-01-07")
    assert np.array_equal(feats[i], table.loc["01-01-05-02-02-01-07"].to_numpy(np.float32))
    with pytest.raises(DatasetError, match="01-01-05-02-02-01-07"):
        pair_ravdess_au(ravdess, table.drop(index="01-01-05-02-02-01-07"))


def test_au_table_rejects_wrong_columns(tmp_path: Path) -> None:
    bad = tmp_path / "au.csv"
    bad.write_text("key,AU01_r_mean\n01-01-01-01-01-01-01,0.1\n")
    with pytest.raises(DatasetError, match="missing AU columns"):
        read_ravdess_au(bad)
    with pytest.raises(DatasetError, match="not found"):
        read_ravdess_au(tmp_path / "absent.csv")


# -- FER-2013 -----------------------------------------------------------------------------------------

def test_fer2013_real_split_counts(data: Path) -> None:
    corpus = read_fer2013(data / "fer2013")
    splits = {name: sum(s.split == name for s in corpus) for name in ("train", "public_test", "private_test")}
    assert splits == {"train": 28709, "public_test": 3589, "private_test": 3589}
    assert not corpus.excluded
    assert {s.speaker for s in corpus} == {"fer2013:unknown"}
    assert {s.modality for s in corpus} == {"image"}
    assert set(corpus.label_counts()) == set(EMOTIONS) - {"calm"}
    assert all((s.split == "train") == (s.meta["folder"] == "train") for s in corpus)
    for s in (corpus[0], corpus[len(corpus) // 2], corpus[-1]):
        img = load_fer_image(s)
        assert img.shape == (48, 48) and img.dtype == np.uint8 and img.std() > 0


def test_fer2013_csv_and_images(tmp_path: Path) -> None:
    import cv2

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(4, 48, 48), dtype=np.uint8)
    rows = ["emotion,pixels,Usage"]
    for face, (emo, usage) in zip(faces, [("3", "Training"), ("2", "PublicTest"), ("6", "PrivateTest"),
                                          ("0", "Validation")], strict=True):
        rows.append(f"{emo},{' '.join(map(str, face.ravel()))},{usage}")
    csv = tmp_path / "csv" / "fer2013.csv"
    csv.parent.mkdir()
    csv.write_text("\n".join(rows) + "\n")
    corpus = read_fer2013(tmp_path / "csv")
    assert [(s.label, s.split, s.meta["row"]) for s in corpus] == [
        ("happy", "train", 0), ("fearful", "public_test", 1), ("neutral", "private_test", 2)]
    assert corpus.excluded_counts() == {"bad_name": 1}
    assert all(s.path == csv for s in corpus)
    for s in corpus:
        assert np.array_equal(load_fer_image(s), faces[s.meta["row"]])

    img_root = tmp_path / "img"
    for rel, face in (("train/happy/Training_1.jpg", faces[0]), ("test/sad/PrivateTest_7.png", faces[1]),
                      ("test/sad/odd_name.png", faces[2])):
        (img_root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(img_root / rel), face)
    images = read_fer2013(img_root)
    assert [(s.label, s.split) for s in images] == [("sad", "private_test"), ("happy", "train")]
    assert images.excluded_counts() == {"bad_name": 1}
    assert np.array_equal(load_fer_image(images[0]), faces[1])  # PNG is lossless


# -- CREMA-D ------------------------------------------------------------------------------------------

def test_cremad_layout(tmp_path: Path) -> None:
    touch(tmp_path, "AudioWAV/1001_DFA_ANG_XX.wav", "AudioWAV/1091_IEO_HAP_HI.wav",
          "AudioMP3/1001_DFA_ANG_XX.mp3", "VideoFlash/1001_DFA_ANG_XX.flv", "VideoMP4/1001_DFA_ANG_XX.mp4",
          "AudioWAV/1092_DFA_ANG_XX.wav",
          "AudioWAV/1001_DFA_ANG_QQ.wav", "AudioWAV/junk.wav", "AudioWAV/1001_DFA_XYZ_XX.wav")
    (tmp_path / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,"
                                                    "Not Hispanic\n")
    corpus = read_cremad(tmp_path)
    got = [(s.path.relative_to(tmp_path).as_posix(), s.label, s.modality, s.speaker) for s in corpus]
    assert got == [("AudioWAV/1001_DFA_ANG_XX.wav", "angry", "audio", "cremad:1001"),
                   ("AudioWAV/1091_IEO_HAP_HI.wav", "happy", "audio", "cremad:1091"),
                   ("VideoFlash/1001_DFA_ANG_XX.flv", "angry", "av", "cremad:1001")]
    assert corpus[0].take == corpus[2].take == "cremad:1001_DFA_ANG_XX"
    assert corpus[0].meta["gender"] == "male" and corpus[1].meta["level"] == "high"
    assert corpus.excluded_counts() == {"duplicate": 2, "bad_name": 3, "bad_label": 1}
    assert [s.modality for s in read_cremad(tmp_path, modalities=("av",))] == ["av"]


def test_cremad_real_clips(data: Path) -> None:
    corpus = read_cremad(data / "clips" / "cremad")
    assert sorted(s.label for s in corpus) == ["angry", "happy", "sad"]
    assert {s.modality for s in corpus} == {"av"} and corpus.speakers() == ["cremad:1001"]


# -- eNTERFACE'05 -------------------------------------------------------------------------------------

def test_enterface_layout_with_subject_6_irregularities(tmp_path: Path) -> None:
    touch(tmp_path, "subject 1/anger/sentence 1/s1_an_1.avi", "subject 1/happiness/sentence 5/s1_ha_5.avi",
          "Subject 6/Fear/s6_fe_3.avi", "Subject 6/SURPRISE/S6_SU_2.AVI",
          "subject_12/sadness/Sentence 2/s_12_sa_2.avi",
          "subject 2/anger/sentence 1/s2_di_1.avi", "subject 2/disgust/notes.avi", "subject 2/Thumbs.db",
          "extras/s3_an_1.avi")
    corpus = read_enterface(tmp_path)
    got = sorted((s.speaker, s.label, s.meta["sentence"]) for s in corpus)
    assert got == [("enterface:1", "angry", 1), ("enterface:1", "happy", 5), ("enterface:12", "sad", 2),
                   ("enterface:6", "fearful", 3), ("enterface:6", "surprised", 2)]
    assert corpus.excluded_counts() == {"bad_label": 1, "bad_name": 2}
    assert {s.modality for s in corpus} == {"av"}


# -- BAUM-1s ------------------------------------------------------------------------------------------

def test_baum1s_annotations_and_clips(tmp_path: Path) -> None:
    clips = "BAUM1s_MP4 - All"
    touch(tmp_path, f"{clips}/s001/S001_001.mp4", f"{clips}/s001/S001_002.mp4", f"{clips}/s001/S001_003.mp4",
          f"{clips}/s002/S002_002.mp4", f"{clips}/s002/S002_009.mp4", f"{clips}/s002/S002_010.mp4")
    (tmp_path / "Annotations_BAUM1s.csv").write_text(
        "No,Subject,Gender,Clip Name,Emotion,Code\n"
        "1,1,Male,S001_001,Happiness,8\n"
        "2,1,Male,S001_002,Boredom,2\n"
        "3,1,Male,S001_003,Contempt,5\n"
        "4,2,Female,S002_001,Neutral,9\n"
        "5,2,Female,S002_002,Anger,6\n"
        "6,2,Female,s002_010.mp4,Unsure (confused),13\n")
    corpus = read_baum1s(tmp_path)
    assert [(s.meta["clip"], s.label, s.speaker) for s in corpus] == [("S001_001", "happy", "baum1s:S001")]
    assert corpus.excluded_counts() == {"unmapped_label": 3, "missing_file": 1, "bad_label": 1,
                                        "unannotated": 1}
    merged = read_baum1s(tmp_path, contempt="disgust")
    assert [(s.meta["clip"], s.label) for s in merged] == [("S001_001", "happy"), ("S001_003", "disgust")]


def test_baum1s_needs_annotations(tmp_path: Path) -> None:
    touch(tmp_path, "s001/S001_001.mp4")
    with pytest.raises(DatasetError, match="annotation"):
        read_baum1s(tmp_path)


# -- SAVEE --------------------------------------------------------------------------------------------

def test_savee_layout(tmp_path: Path) -> None:
    touch(tmp_path, "AudioData/DC/a01.wav", "AudioData/DC/sa03.wav", "AudioData/JE/su15.wav",
          "AudioData/DC/x01.wav", "AudioData/info.txt", "AudioData/XX/n01.wav", "AudioVisualClip/DC/sa03.avi",
          "AudioVisualClip/KL/n30.avi")
    corpus = read_savee(tmp_path)
    got = [(s.path.relative_to(tmp_path).as_posix(), s.label, s.speaker, s.modality) for s in corpus]
    assert got == [("AudioData/DC/a01.wav", "angry", "savee:DC", "audio"),
                   ("AudioData/DC/sa03.wav", "sad", "savee:DC", "audio"),
                   ("AudioData/JE/su15.wav", "surprised", "savee:JE", "audio"),
                   ("AudioVisualClip/DC/sa03.avi", "sad", "savee:DC", "av"),
                   ("AudioVisualClip/KL/n30.avi", "neutral", "savee:KL", "av")]
    assert corpus[1].take == corpus[3].take == "savee:DC:sa03"
    assert corpus.excluded_counts() == {"bad_name": 2}


# -- MEAD ---------------------------------------------------------------------------------------------

def test_mead_layout_and_contempt(tmp_path: Path) -> None:
    touch(tmp_path, "M003/video/front/angry/level_3/001.mp4", "M003/video/left_30/angry/level_3/001.mp4",
          "M003/audio/angry/level_3/001.m4a", "W009/video/front/contempt/level_1/002.mp4",
          "W009/audio/contempt/level_1/002.m4a", "M003/video/front/angry/001.mp4",
          "W009/video/front/disgusted/level_2/005.mp4")
    corpus = read_mead(tmp_path)
    got = [(s.speaker, s.modality, s.label, s.meta.get("view")) for s in corpus]
    assert got == [("mead:M003", "audio", "angry", None), ("mead:M003", "video", "angry", "front"),
                   ("mead:W009", "video", "disgust", "front")]
    assert corpus[0].take == corpus[1].take == "mead:M003:angry:3:001"
    assert corpus.excluded_counts() == {"unmapped_label": 2, "bad_name": 1}
    assert corpus[2].meta["gender"] == "female"
    merged = read_mead(tmp_path, contempt="disgust", views=None)
    assert len(merged) == 6 and merged.excluded_counts() == {"bad_name": 1}
    assert sum(s.label == "disgust" for s in merged) == 3


def test_mead_packed_archive_is_an_error(tmp_path: Path) -> None:
    touch(tmp_path, "M005/video.tar", "M005/audio/angry/level_1/001.m4a")
    with pytest.raises(DatasetError, match="video.tar.*extract"):
        read_mead(tmp_path)


# -- MELD ---------------------------------------------------------------------------------------------

MELD_HEADER = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
               "StartTime,EndTime\n")


def test_meld_csv_and_clips(tmp_path: Path) -> None:
    raw = tmp_path / "MELD.Raw"
    (raw / "train").mkdir(parents=True)
    (raw / "train" / "train_sent_emo.csv").write_text(
        MELD_HEADER
        + '1,"Oh my God, he\'s lost it.",Monica,surprise,negative,0,0,8,21,"00:16:16,059","00:16:21,731"\n'
        + "2,I'm fine.,Chandler,joy,positive,0,1,8,21,0,1\n"
        + "3,What?,Ross,neutral,neutral,1,0,8,21,0,1\n")
    (raw / "dev_sent_emo.csv").write_text(MELD_HEADER + "1,No.,Rachel,anger,negative,0,0,1,1,0,1\n")
    (raw / "test_sent_emo.csv").write_text(MELD_HEADER + "1,Yes.,Joey,sadness,negative,0,0,1,1,0,1\n")
    touch(raw, "train/train_splits/dia0_utt0.mp4", "train/train_splits/dia1_utt0.mp4",
          "dev/dev_splits_complete/dia0_utt0.mp4", "test/output_repeated_splits_test/dia0_utt0.mp4")
    corpus = read_meld(raw)
    got = [(s.split, s.speaker, s.label, s.text, s.modality) for s in corpus]
    assert got == [("dev", "meld:Rachel", "angry", "No.", "av"),
                   ("test", "meld:Joey", "sad", "Yes.", "av"),
                   ("train", "meld:Monica", "surprised", "Oh my God, he's lost it.", "av"),
                   ("train", "meld:Ross", "neutral", "What?", "av")]
    assert corpus.excluded_counts() == {"missing_file": 1}
    assert corpus.excluded[0].path.endswith("dia0_utt1.mp4")
    assert corpus[2].take == "meld:train:dia0_utt0" and corpus[2].meta["sentiment"] == "negative"
    text = read_meld(raw, splits=("train",), clips=False)
    assert len(text) == 3 and {s.modality for s in text} == {"text"} and not text.excluded
    (raw / "test" / "output_repeated_splits_test" / "dia0_utt0.mp4").rename(raw / "test" / "moved.mp4")
    (raw / "test" / "output_repeated_splits_test").rmdir()
    with pytest.raises(DatasetError, match="output_repeated_splits_test"):
        read_meld(raw)
    assert len(read_meld(raw, clips=False)) == 5
    (raw / "dev_sent_emo.csv").unlink()
    with pytest.raises(DatasetError, match="dev_sent_emo.csv"):
        read_meld(raw)


# -- manifest -----------------------------------------------------------------------------------------

def test_manifest(tmp_path: Path) -> None:
    touch(tmp_path, "clips/a.wav", "clips/a.mp4", "clips/b.jpg")
    csv = tmp_path / "manifest.csv"
    csv.write_text("path,label,speaker,take,split\n"
                   "clips/a.wav,happy,p1,t1,train\n"
                   "clips/a.mp4,Happy,p1,t1,train\n"
                   "clips/b.jpg,sad,p2,,test\n"
                   "clips/c.wav,sad,p2,,test\n"
                   "clips/b.jpg,joy,p2,,test\n"
                   f"{tmp_path / 'clips' / 'b.jpg'},angry,p3,,\n")
    corpus = read_manifest(csv, corpus="mine")
    got = [(s.path.name, s.label, s.speaker, s.modality, s.take, s.split) for s in corpus]
    assert got == [("a.mp4", "happy", "mine:p1", "av", "mine:t1", "train"),
                   ("a.wav", "happy", "mine:p1", "audio", "mine:t1", "train"),
                   ("b.jpg", "sad", "mine:p2", "image", "mine:clips/b.jpg", "test"),
                   ("b.jpg", "angry", "mine:p3", "image", f"mine:{tmp_path / 'clips' / 'b.jpg'}", None)]
    assert corpus.excluded_counts() == {"missing_file": 1, "bad_label": 1}
    mapped = read_manifest(csv, label_corpus="meld", check_files=False)
    assert [s.label for s in mapped] == ["happy"]  # only 'joy' is a MELD label
    assert mapped.excluded_counts() == {"bad_label": 5}
    csv.write_text("path,speaker\nx.wav,p\n")
    with pytest.raises(DatasetError, match="label"):
        read_manifest(csv)


# -- CARER --------------------------------------------------------------------------------------------

def test_carer_real(data: Path) -> None:
    corpus = read_carer(data / "text-emotion-carer")
    counts = {name: sum(s.split == name for s in corpus) for name in ("train", "val", "test")}
    love = corpus.excluded_counts()["unmapped_label"]
    assert sum(counts.values()) + love == 20000 and love > 0
    assert all(s.text and s.modality == "text" for s in corpus[:50])


def test_sample_validation() -> None:
    ok = dict(path=Path("x.wav"), label="happy", speaker="c:1", corpus="c", modality="audio", take="c:1")
    assert Sample(**ok).uid == "c:x.wav"
    with pytest.raises(ValueError, match="canonical"):
        Sample(**{**ok, "label": "joy"})
    with pytest.raises(ValueError, match="prefixed"):
        Sample(**{**ok, "speaker": "1"})
    with pytest.raises(ValueError, match="modality"):
        Sample(**{**ok, "modality": "3d"})
    hash(Sample(**ok))  # frozen and hashable despite the meta dict
