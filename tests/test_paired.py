"""The paired audio-visual set (avemo.datasets.paired) on the real shared data, and the systems trained on it
(benchmarks/paired_systems.py)."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from avemo.config import data_root
from avemo.datasets.paired import (
    FACE_SPLITS,
    LABELS,
    Jitter,
    build_arrays,
    build_pairs,
    face_sequence,
    read_face,
    read_manifest,
    speaker_splits,
)
from avemo.labels import to_canonical

ROOT = data_root()
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_systems.py"
FER_PREFIX = {"train": "Training_", "public_test": "PublicTest_", "private_test": "PrivateTest_"}

pytestmark = pytest.mark.skipif(not (ROOT / "fer2013").is_dir() or not (ROOT / "ravdess-speech-16k").is_dir(),
                                reason="needs the shared FER-2013 and speech corpora")


@pytest.fixture(scope="module")
def parts() -> tuple[list, list]:
    from avemo.datasets.fer2013 import read_fer2013
    from avemo.datasets.speech import read_speech_corpora

    return read_speech_corpora(root=ROOT), list(read_fer2013(ROOT / "fer2013"))


@pytest.fixture(scope="module")
def pairs(parts: tuple[list, list]) -> list:
    speech, faces = parts
    return build_pairs(speech, faces, root=ROOT, seed=0)


def test_pairs_are_label_consistent(pairs: list) -> None:
    for p in pairs:
        face = Path(p.face)
        assert to_canonical("fer2013", face.parent.name) == p.label, p
        assert face.name.startswith(FER_PREFIX[p.face_split]), p
        assert p.face_split == FACE_SPLITS[p.split]
        assert p.label in LABELS
        assert (ROOT / p.clip).is_file() and (ROOT / p.face).is_file()
    assert {p.label for p in pairs} == set(LABELS)


def test_pairs_are_speaker_disjoint_and_keep_every_clip(parts: tuple[list, list], pairs: list) -> None:
    speech, _ = parts
    by_split = {s: {p.clip_speaker for p in pairs if p.split == s} for s in ("train", "val", "test")}
    assert not by_split["train"] & by_split["val"]
    assert not by_split["train"] & by_split["test"]
    assert not by_split["val"] & by_split["test"]
    corpora = {s.corpus for s in speech}
    for split in ("train", "val", "test"):  # every corpus has speakers on every side
        assert {p.clip_corpus for p in pairs if p.split == split} == corpora
    # every non-calm clip is paired, two faces per training clip, one otherwise
    clips = Counter(p.clip for p in pairs)
    assert len(clips) == sum(s.label != "calm" for s in speech)
    assert all(n == (2 if next(q for q in pairs if q.clip == c).split == "train" else 1) for c, n in clips.items())
    # a face is reused within a split only where its class ran out
    for split in ("train", "val", "test"):
        faces = Counter(p.face for p in pairs if p.split == split)
        reused = sum(p.face_reused for p in pairs if p.split == split)
        assert sum(n - 1 for n in faces.values()) == reused


def test_pairing_is_deterministic_and_the_committed_manifest_is_it(parts: tuple[list, list], pairs: list) -> None:
    speech, faces = parts
    assert build_pairs(speech, faces, root=ROOT, seed=0) == pairs
    other = build_pairs(speech, faces, root=ROOT, seed=1)
    assert [p.face for p in other] != [p.face for p in pairs]
    committed = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "paired_systems" / "manifest.csv"
    assert read_manifest(committed) == pairs


def test_speaker_split_has_every_side_per_corpus(parts: tuple[list, list]) -> None:
    speech, _ = parts
    where = speaker_splits(speech, seed=0)
    for corpus in {s.corpus for s in speech}:
        sides = Counter(v for k, v in where.items() if k.startswith(f"{corpus}:"))
        assert set(sides) == {"train", "val", "test"}, corpus


@pytest.fixture(scope="module")
def faces(pairs: list) -> list[np.ndarray]:
    return [read_face(ROOT / p.face) for p in pairs[::997][:6]]


def test_sequence_without_jitter_is_the_face(faces: list[np.ndarray]) -> None:
    for f in faces:
        seq, _ = face_sequence(f, 7, Jitter(frames=5, shift=0.0, scale=0.0, brightness=0.0))
        assert seq.shape == (5, 48, 48) and seq.dtype == np.uint8
        assert (seq == f[None]).all()


def test_sequence_brightness_is_the_stated_gain_and_nothing_else(faces: list[np.ndarray]) -> None:
    for k, f in enumerate(faces):
        seq, track = face_sequence(f, k, Jitter(frames=6, shift=0.0, scale=0.0, brightness=0.1))
        assert np.all(np.abs(track["gain"] - 1) <= 0.1 + 1e-9)
        for t in range(6):
            expected = np.clip(np.rint(f.astype(np.float32) * np.float32(track["gain"][t])), 0, 255)
            assert np.abs(seq[t].astype(int) - expected.astype(int)).max() <= 1


def test_sequence_geometry_only_moves_pixels(faces: list[np.ndarray]) -> None:
    """Shift and scale interpolate between the face's own pixels: no value outside its range, the centre kept."""
    for k, f in enumerate(faces):
        seq, track = face_sequence(f, k, Jitter(frames=6, shift=2.0, scale=0.05, brightness=0.0))
        assert np.all(np.abs(track["dx"]) <= 2) and np.all(np.abs(track["dy"]) <= 2)
        assert np.all(np.abs(track["scale"] - 1) <= 0.05 + 1e-9)
        assert seq.min() >= f.min() and seq.max() <= f.max()
        assert np.all(np.abs(seq.reshape(6, -1).mean(1) - f.mean()) < 0.1 * f.std() + 2)
        assert (seq != f[None]).any()  # it did move


def test_sequence_full_jitter_is_bounded_and_seeded(faces: list[np.ndarray]) -> None:
    j = Jitter()
    for k, f in enumerate(faces):
        seq, track = face_sequence(f, k, j)
        again, _ = face_sequence(f, k, j)
        assert (seq == again).all()
        assert (face_sequence(f, k + 100, j)[0] != seq).any()
        for t in range(j.frames):  # undo the gain: back within the source range (rounding aside)
            g = track["gain"][t]
            assert seq[t].min() >= np.floor(f.min() * g) - 1
            assert seq[t].max() <= min(255, np.ceil(f.max() * g) + 1)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("paired_systems", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small(pairs: list, tmp_path_factory: pytest.TempPathFactory, bench):
    """The arrays of a small real subset: two training pairs per class and a few selection pairs."""
    picked = []
    for split, per in (("train", 2), ("val", 1)):
        for label in LABELS:
            picked += [p for p in pairs if p.split == split and p.label == label][:per]
    path = build_arrays(picked, ROOT, tmp_path_factory.mktemp("paired") / "arrays.npz")
    return bench.PairedData(path)


def test_arrays_hold_the_pairs(small, pairs: list) -> None:
    assert small.video.shape[1:] == (8, 48, 48)
    assert Counter(small.split.tolist()) == {"train": 14, "val": 7}
    assert (np.bincount(small.y, minlength=7) == 3).all()
    assert ((0 <= small.key) & (small.key < 8)).all()
    assert small.mel.shape[1] == 64 and (small.mel_len > 0).all()


@pytest.mark.parametrize("name", ["mocanu2023_cma", "mocanu2023_cma_no_triplet", "akturk2024_onn",
                                  "akturk2024_onn_face", "akturk2024_onn_voice", "zhang2016_cnnrnn",
                                  "dixit2024_cnn", "dixit2024_cnn_early", "dixit2024_cnn_video",
                                  "dixit2024_cnn_audio"])
def test_training_on_a_small_paired_subset_lowers_the_loss(name: str, small, bench) -> None:
    import torch

    torch.manual_seed(0)
    train_idx = small.idx("train")
    task = bench.make_task(name, small, subset=train_idx, batch_size=len(train_idx))
    model = task.build_model()
    batch = next(task.batches(0, torch.Generator().manual_seed(0), np.random.default_rng(0)))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout draws every time
        return task.loss(model, batch)[0]

    before = float(loss().detach())
    for _ in range(12):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < before - 0.05


def test_run_names_keep_seeds_and_budgets_apart(bench) -> None:
    assert bench.run_name("zhang2016_cnnrnn", 0) == "zhang2016_cnnrnn"
    assert bench.run_name("zhang2016_cnnrnn", 1) == "zhang2016_cnnrnn__seed1"
    assert bench.run_name("zhang2016_cnnrnn", 0, bench.BUDGET_MIN) == "zhang2016_cnnrnn"
    assert bench.run_name("zhang2016_cnnrnn", 0, 30.0) == "zhang2016_cnnrnn__30min"
