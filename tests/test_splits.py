"""Speaker-independent splits: the RAVDESS protocol on the real data, takes kept together, leak checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avemo.datasets import (
    Fold,
    Sample,
    check_speaker_independent,
    inner_split,
    predefined_split,
    ravdess_folds,
    read_ravdess,
    speaker_folds,
)
from avemo.datasets.splits import SplitError


@pytest.fixture(scope="module")
def ravdess(data: Path):
    return read_ravdess(data / "ravdess-speech-16k")


def test_ravdess_six_folds_of_four_actors(ravdess) -> None:
    folds = ravdess_folds(ravdess)
    assert [f.index for f in folds] == list(range(6))
    check_speaker_independent(ravdess, folds, complete=True)
    tested: list[str] = []
    for k, fold in enumerate(folds):
        assert fold.test_speakers == tuple(f"ravdess:{a:02d}" for a in range(4 * k + 1, 4 * k + 5))
        assert fold.test_idx.size == 240 and fold.train_idx.size == 1200
        train_spk = {ravdess[int(i)].speaker for i in fold.train_idx}
        assert not train_spk & set(fold.test_speakers)  # no actor on both sides
        tested += fold.test_speakers
    assert sorted(tested) == ravdess.speakers()  # every actor tested exactly once


def test_speaker_folds_real_balanced_and_deterministic(ravdess) -> None:
    folds = speaker_folds(ravdess, 5, seed=3)
    check_speaker_independent(ravdess, folds, complete=True)
    sizes = [f.test_idx.size for f in folds]
    assert max(sizes) - min(sizes) <= 60  # whole actors of 60 clips
    again = speaker_folds(ravdess, 5, seed=3)
    assert all(np.array_equal(a.test_idx, b.test_idx) for a, b in zip(folds, again, strict=True))
    other = speaker_folds(ravdess, 5, seed=4)
    assert any(a.test_speakers != b.test_speakers for a, b in zip(folds, other, strict=True))


def _touch(root: Path, names: list[str]) -> None:
    for name in names:
        actor = name.split(".")[0].split("-")[-1]
        p = root / f"Actor_{actor}" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_three_files_of_a_take_land_in_one_fold(tmp_path: Path) -> None:
    names = []
    for actor in range(1, 13):
        for emotion in ("03", "05"):
            rest = f"01-{emotion}-01-01-01-{actor:02d}"
            names += [f"01-{rest}.mp4", f"02-{rest}.mp4", f"03-{rest}.wav"]
    _touch(tmp_path, names)
    corpus = read_ravdess(tmp_path)
    assert len(corpus) == 72 and {s.modality for s in corpus} == {"av", "video", "audio"}
    for folds in (ravdess_folds(corpus), speaker_folds(corpus, 4), speaker_folds(corpus, 5, seed=1)):
        check_speaker_independent(corpus, folds, complete=True)
        fold_of = {}
        for fold in folds:
            for i in fold.test_idx:
                fold_of.setdefault(corpus[int(i)].take, set()).add(fold.index)
        assert len(fold_of) == 24 and all(len(v) == 1 for v in fold_of.values())
        for take in fold_of:
            members = [s.modality for s in corpus if s.take == take]
            assert sorted(members) == ["audio", "av", "video"]
    assert [f.index for f in ravdess_folds(corpus)] == [0, 1, 2]  # actors 1-12 only


def _sample(speaker: str, take: str, label: str = "happy") -> Sample:
    return Sample(path=Path(f"{take}.wav"), label=label, speaker=f"x:{speaker}", corpus="x", modality="audio",
                  take=f"x:{take}")


def test_leaks_are_caught() -> None:
    samples = [_sample("a", "t1"), _sample("a", "t2"), _sample("b", "t3"), _sample("c", "t4")]
    leak_speaker = Fold(0, np.array([0, 2]), np.array([1, 3]), ("x:a", "x:c"))
    with pytest.raises(SplitError, match="speakers on both sides"):
        check_speaker_independent(samples, [leak_speaker])
    shared_take = [*samples, _sample("d", "t3")]
    leak_take = Fold(0, np.array([0, 1, 2, 3]), np.array([4]), ("x:d",))
    with pytest.raises(SplitError, match="takes on both sides"):
        check_speaker_independent(shared_take, [leak_take])
    # speaker_folds keeps speakers joined by a take together: b and d are one group
    for fold in speaker_folds(shared_take, 3):
        assert {"x:b", "x:d"} <= set(fold.test_speakers) or not {"x:b", "x:d"} & set(fold.test_speakers)
    check_speaker_independent(shared_take, speaker_folds(shared_take, 3), complete=True)
    wrong_names = Fold(0, np.array([0, 1, 2]), np.array([3]), ("x:b",))
    with pytest.raises(SplitError, match="test_speakers"):
        check_speaker_independent(samples, [wrong_names])
    twice = [Fold(k, np.array([0, 1, 2]), np.array([3]), ("x:c",)) for k in (0, 1)]
    with pytest.raises(SplitError, match="tested in folds"):
        check_speaker_independent(samples, twice)
    with pytest.raises(SplitError, match="never tested"):
        check_speaker_independent(samples, twice[:1], complete=True)
    with pytest.raises(SplitError, match="cannot make"):
        speaker_folds(samples, 4)


def test_inner_split_uses_training_speakers_only(ravdess) -> None:
    fold = ravdess_folds(ravdess)[2]
    inner = inner_split(ravdess, fold.train_idx, seed=1)
    train_spk = {ravdess[int(i)].speaker for i in fold.train_idx}
    assert set(inner.val_speakers) <= train_spk and not set(inner.val_speakers) & set(fold.test_speakers)
    assert np.array_equal(np.sort(np.concatenate([inner.fit_idx, inner.val_idx])), fold.train_idx)
    fit_spk = {ravdess[int(i)].speaker for i in inner.fit_idx}
    assert not fit_spk & set(inner.val_speakers)
    assert inner.val_idx.size >= 0.2 * fold.train_idx.size and len(inner.val_speakers) == 4
    assert inner_split(ravdess, fold.train_idx, seed=1).val_speakers == inner.val_speakers
    four = inner_split(ravdess, fold.train_idx, n_val_speakers=2, seed=0)
    assert len(four.val_speakers) == 2 and four.val_idx.size == 120
    with pytest.raises(SplitError):
        inner_split(ravdess, fold.test_idx[:60])  # one speaker: nothing to hold out


def test_predefined_split() -> None:
    samples = [Sample(path=Path(f"{i}.jpg"), label="sad", speaker="fer2013:unknown", corpus="fer2013",
                      modality="image", take=f"fer2013:{i}", split=split)
               for i, split in enumerate(["train", "train", "public_test", "private_test"])]
    parts = predefined_split(samples)
    assert {k: v.tolist() for k, v in parts.items()} == {"train": [0, 1], "public_test": [2],
                                                         "private_test": [3]}
    with pytest.raises(SplitError, match="speaker groups"):
        speaker_folds(samples, 2)  # FER has no speakers: its protocol is the Usage split
    with pytest.raises(SplitError, match="no predefined split"):
        predefined_split([_sample("a", "t1")])
