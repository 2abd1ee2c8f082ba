"""Speaker-independent evaluation splits: folds by speaker, the standard RAVDESS folds, and checks.

The rules (see the evaluation protocol in the design notes):

* never split by utterance at random: a speaker is on one side of a fold only;
* the files of one take (``Sample.take``: RAVDESS audio-only, video-only and full-AV files) are on one
  side, always; speakers linked through a shared take are kept together too;
* hyper-parameters are chosen on training speakers only (:func:`inner_split`);
* corpora with a published partition (FER-2013 ``Usage``, MELD, CARER) use it (:func:`predefined_split`).

Every function takes any ``Sequence[Sample]`` (a :class:`~avemo.datasets.base.Corpus` is one) and
returns indices into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from avemo.datasets.base import Sample
from avemo.errors import SplitError

__all__ = ["Fold", "InnerSplit", "SplitError", "check_speaker_independent", "inner_split", "predefined_split",
           "ravdess_folds", "speaker_folds"]


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: sorted ``int64`` indices into the samples, and who is tested."""

    index: int
    train_idx: np.ndarray
    test_idx: np.ndarray
    test_speakers: tuple[str, ...]

    def __repr__(self) -> str:
        return (f"Fold({self.index}, train={self.train_idx.size}, test={self.test_idx.size}, "
                f"test_speakers={list(self.test_speakers)})")


class InnerSplit(NamedTuple):
    """A validation split inside a fold's training part: indices into the samples (not into ``train_idx``)."""

    fit_idx: np.ndarray
    val_idx: np.ndarray
    val_speakers: tuple[str, ...]


def _groups(samples: Sequence[Sample]) -> np.ndarray:
    """Group id per sample: speakers joined with every other speaker they share a take with."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for s in samples:
        a, b = find("s\0" + s.speaker), find("t\0" + s.take)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = [find("s\0" + s.speaker) for s in samples]
    ids = {r: i for i, r in enumerate(sorted(set(roots)))}
    return np.array([ids[r] for r in roots], dtype=np.int64)


def _speakers_of(samples: Sequence[Sample], idx: np.ndarray) -> tuple[str, ...]:
    return tuple(sorted({samples[int(i)].speaker for i in idx}))


def _make_fold(samples: Sequence[Sample], index: int, test_mask: np.ndarray) -> Fold:
    all_idx = np.arange(len(samples), dtype=np.int64)
    test_idx = all_idx[test_mask]
    return Fold(index, all_idx[~test_mask], test_idx, _speakers_of(samples, test_idx))


def speaker_folds(samples: Sequence[Sample], k: int, *, seed: int = 0) -> list[Fold]:
    """``k`` folds with disjoint speakers (GroupKFold-like), balanced in samples and deterministic.

    Speaker groups are shuffled with ``seed`` (only to break ties), then placed largest first on the
    fold with the fewest samples so far (then the fewest speakers, then the lowest index).
    """
    if k < 2:
        raise SplitError(f"need k >= 2 folds, got {k}")
    groups = _groups(samples)
    n_groups = int(groups.max()) + 1 if groups.size else 0
    if n_groups < k:
        raise SplitError(f"{n_groups} speaker groups cannot make {k} speaker-independent folds")
    sizes = np.bincount(groups, minlength=n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    load = np.zeros(k, dtype=np.int64)
    members = np.zeros(k, dtype=np.int64)
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    for g in order:
        f = min(range(k), key=lambda j: (load[j], members[j], j))
        fold_of_group[g] = f
        load[f] += sizes[g]
        members[f] += 1
    fold_of_sample = fold_of_group[groups]
    return [_make_fold(samples, f, fold_of_sample == f) for f in range(k)]


def ravdess_folds(samples: Sequence[Sample]) -> list[Fold]:
    """The standard RAVDESS protocol: 6 folds testing actors 1-4, 5-8, ..., 21-24.

    ``Fold.index`` is the standard fold number (0..5); folds with no sample (a subset of the actors) are
    left out, so the numbering stays the standard one.
    """
    from avemo.datasets.ravdess import actor_of

    try:
        actors = np.array([actor_of(s) for s in samples], dtype=np.int64)
    except ValueError as err:
        raise SplitError(f"ravdess_folds needs RAVDESS samples only: {err}") from err
    fold_of_sample = (actors - 1) // 4
    return [_make_fold(samples, f, fold_of_sample == f) for f in range(6) if np.any(fold_of_sample == f)]


def check_speaker_independent(samples: Sequence[Sample], folds: Sequence[Fold], *,
                              complete: bool = False) -> None:
    """Raise :class:`SplitError` if a fold leaks: a speaker or a take on both sides, a sample on both
    sides, a sample tested in two folds, or ``test_speakers`` that do not match the test samples.
    With ``complete=True`` every sample must also be tested exactly once over the folds."""
    n = len(samples)
    speakers = np.array([s.speaker for s in samples], dtype=object)
    takes = np.array([s.take for s in samples], dtype=object)
    tested = np.zeros(n, dtype=np.int64)
    tested_speakers: dict[str, int] = {}
    for fold in folds:
        tr, te = np.asarray(fold.train_idx, dtype=np.int64), np.asarray(fold.test_idx, dtype=np.int64)
        for name, idx in (("train", tr), ("test", te)):
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise SplitError(f"fold {fold.index}: {name} indices out of range 0..{n - 1}")
            if np.unique(idx).size != idx.size:
                raise SplitError(f"fold {fold.index}: repeated {name} indices")
        both = np.intersect1d(tr, te)
        if both.size:
            raise SplitError(f"fold {fold.index}: {both.size} samples on both sides, "
                             f"e.g. {samples[int(both[0])].path}")
        spk = set(speakers[tr]) & set(speakers[te])
        if spk:
            raise SplitError(f"fold {fold.index}: speakers on both sides: {sorted(spk)}")
        tk = set(takes[tr]) & set(takes[te])
        if tk:
            raise SplitError(f"fold {fold.index}: takes on both sides: {sorted(tk)[:5]}")
        if set(fold.test_speakers) != set(speakers[te]):
            raise SplitError(f"fold {fold.index}: test_speakers {list(fold.test_speakers)} do not match the "
                             f"test samples' speakers {sorted(set(speakers[te]))}")
        for s in set(speakers[te]):
            if s in tested_speakers:
                raise SplitError(f"speaker {s} is tested in folds {tested_speakers[s]} and {fold.index}")
            tested_speakers[s] = fold.index
        tested[te] += 1
    if np.any(tested > 1):
        raise SplitError(f"{int(np.sum(tested > 1))} samples are tested in more than one fold")
    if complete and np.any(tested == 0):
        missing = sorted(set(speakers[tested == 0]))
        raise SplitError(f"{int(np.sum(tested == 0))} samples are never tested (speakers {missing[:10]})")


def inner_split(samples: Sequence[Sample], train_idx: np.ndarray, *, val_fraction: float = 0.2,
                n_val_speakers: int | None = None, seed: int = 0) -> InnerSplit:
    """Split a fold's training part into fit and validation sets by speaker, for choosing
    hyper-parameters without looking at the fold's test speakers.

    Validation takes whole speaker groups, in an order shuffled with ``seed``: ``n_val_speakers`` of
    them if given, else groups until they hold at least ``val_fraction`` of the training samples. At
    least one group is left for fitting.
    """
    train_idx = np.sort(np.asarray(train_idx, dtype=np.int64))
    sub = [samples[int(i)] for i in train_idx]
    groups = _groups(sub)
    n_groups = int(groups.max()) + 1 if groups.size else 0
    if n_groups < 2:
        raise SplitError(f"the training part has {n_groups} speaker group(s); need 2 to hold some out")
    order = np.random.default_rng(seed).permutation(n_groups)
    if n_val_speakers is not None:
        if not 1 <= n_val_speakers < n_groups:
            raise SplitError(f"n_val_speakers must be in 1..{n_groups - 1}, got {n_val_speakers}")
        chosen = order[:n_val_speakers]
    else:
        if not 0.0 < val_fraction < 1.0:
            raise SplitError(f"val_fraction must be in (0, 1), got {val_fraction}")
        sizes = np.bincount(groups, minlength=n_groups)
        target = val_fraction * len(sub)
        count, take = 0, 0
        while take < n_groups - 1 and (take == 0 or count < target):
            count += sizes[order[take]]
            take += 1
        chosen = order[:take]
    val_mask = np.isin(groups, chosen)
    val_idx = train_idx[val_mask]
    return InnerSplit(train_idx[~val_mask], val_idx, _speakers_of(samples, val_idx))


def predefined_split(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    """Indices per ``Sample.split`` (FER-2013 ``train``/``public_test``/``private_test``, MELD
    ``train``/``dev``/``test``): the corpus's own protocol. Raises if a sample has no split."""
    names = [s.split for s in samples]
    if any(n is None for n in names):
        raise SplitError("some samples have no predefined split (split=None); use speaker folds")
    arr = np.array(names, dtype=object)
    return {name: np.flatnonzero(arr == name).astype(np.int64) for name in sorted(set(names))}
