"""A paired audio-visual set built from real parts: FER-2013 faces made into short face sequences, each
paired with a real speech clip of the same emotion.

What it is
----------
* **Speech**: the six shared speech corpora (:func:`avemo.datasets.speech.read_speech_corpora`: RAVDESS
  speech and the five of ``speech-extra-16k``), split **by speaker** within each corpus (seeded): about
  20 % of each corpus's speakers are *test* speakers, 15 % *selection* speakers, the rest *training*
  speakers, at least one each; no speaker is on two sides. *calm* clips (RAVDESS only) are left out: no
  face corpus here has calm, so the set has the seven :data:`avemo.labels.BASIC7` classes.
* **Faces**: FER-2013 Training faces for training pairs, PublicTest for selection, PrivateTest for test
  (the conventional protocol), drawn per class without replacement (reused, and counted, only when a class
  runs out). Each face becomes a short sequence (:func:`face_sequence`): ``frames`` copies of the same face
  with a smooth track of small shifts, scale and brightness changes, as a tracked face shows. The jitter
  moves and re-lights pixels; it never changes the expression (no warping of features, no synthesis).
* **Pairs**: every speech clip of a split is paired with ``faces_per_clip`` faces of the same class from
  the matching FER-2013 split. :func:`write_manifest` names every face and clip of every pair.

What it is not
--------------
The two modalities are **independent given the label** (a FER-2013 stranger's face and an actor's voice).
It measures how well a system combines two real, noisy cues of the same emotion; it says nothing about
audio-visual synchrony, lip movement or one person's face-voice coupling, which no corpus here allows.

Deterministic given ``seed``: the speaker split, the face draws and every sequence's jitter.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avemo.datasets.base import Sample
from avemo.errors import DatasetError
from avemo.labels import BASIC7

__all__ = ["FACE_SPLITS", "LABELS", "SPLITS", "Jitter", "Pair", "build_pairs", "face_sequence", "read_manifest",
           "speaker_splits", "write_manifest"]

#: The set's classes: the canonical ones both a face and a voice corpus here have.
LABELS: tuple[str, ...] = BASIC7
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: The FER-2013 partition each split draws its faces from.
FACE_SPLITS: dict[str, str] = {"train": "train", "val": "public_test", "test": "private_test"}
MANIFEST_FIELDS: tuple[str, ...] = ("pair", "split", "label", "clip_corpus", "clip_speaker", "clip",
                                    "face_split", "face", "face_reused", "sequence_seed")


@dataclass(frozen=True)
class Jitter:
    """The face-sequence jitter: a smooth track within ``shift`` pixels (each axis), ``scale`` (relative, about
    the centre) and ``brightness`` (relative gain) of the source face; ``frames`` frames."""

    frames: int = 8
    shift: float = 2.0
    scale: float = 0.05
    brightness: float = 0.10


@dataclass(frozen=True)
class Pair:
    """One row of the manifest: a speech clip and a face (paths relative to the data root)."""

    pair: int
    split: str
    label: str
    clip_corpus: str
    clip_speaker: str
    clip: str
    face_split: str
    face: str
    face_reused: bool
    sequence_seed: int


def _track(rng: np.random.Generator, n: int, bound: float) -> np.ndarray:
    """A smooth random track of ``n`` values within ``[-bound, bound]``: a random start and a bounded random walk."""
    if bound <= 0:
        return np.zeros(n)
    x = np.empty(n)
    x[0] = rng.uniform(-bound, bound)
    for i in range(1, n):
        x[i] = np.clip(x[i - 1] + rng.normal(0.0, bound / 3), -bound, bound)
    return x


def face_sequence(face: np.ndarray, seed: int, jitter: Jitter = Jitter()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``jitter.frames`` frames of one grey face ``(H, W)`` uint8, as a tracked face shows it.

    Frame ``t`` is the face shifted by ``(dx_t, dy_t)`` pixels and scaled by ``s_t`` about its centre (bilinear,
    borders mirrored), then multiplied by ``g_t`` (rounded, clipped to 0..255), with ``|dx|, |dy| <= shift``,
    ``|s - 1| <= scale``, ``|g - 1| <= brightness``, each a smooth random track. Geometry alone only
    interpolates between source pixels, so before the gain every frame's values lie within the source's range;
    with no jitter every frame equals the source. Returns ``(T, H, W)`` uint8 and the track
    (``dx``, ``dy``, ``scale``, ``gain``).
    """
    import cv2

    face = np.asarray(face)
    if face.ndim != 2 or face.dtype != np.uint8:
        raise ValueError(f"need one grey uint8 face (H, W), got {face.dtype} {face.shape}")
    rng = np.random.default_rng(seed)
    n = jitter.frames
    track = {"dx": _track(rng, n, jitter.shift), "dy": _track(rng, n, jitter.shift),
             "scale": 1.0 + _track(rng, n, jitter.scale), "gain": 1.0 + _track(rng, n, jitter.brightness)}
    h, w = face.shape
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    src = face.astype(np.float32)
    out = np.empty((n, h, w), np.uint8)
    for t in range(n):
        m = cv2.getRotationMatrix2D(centre, 0.0, float(track["scale"][t]))
        m[:, 2] += (track["dx"][t], track["dy"][t])
        moved = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        out[t] = np.clip(np.rint(moved * track["gain"][t]), 0, 255).astype(np.uint8)
    return out, track


def speaker_splits(samples: Sequence[Sample], seed: int = 0, *, test: float = 0.2, val: float = 0.15
                   ) -> dict[str, str]:
    """``{speaker: split}``: within each corpus, a seeded shuffle of its speakers, the first ``test`` share (at
    least one) to *test*, the next ``val`` share (at least one) to *val*, the rest (at least one) to *train*."""
    by_corpus: dict[str, list[str]] = {}
    for s in samples:
        if s.speaker not in by_corpus.setdefault(s.corpus, []):
            by_corpus[s.corpus].append(s.speaker)
    out: dict[str, str] = {}
    for corpus, speakers in sorted(by_corpus.items()):
        speakers = sorted(speakers)
        if len(speakers) < 3:
            raise DatasetError(corpus, f"needs at least 3 speakers for a train/val/test split, has {len(speakers)}")
        rng = np.random.default_rng([seed, zlib.crc32(corpus.encode())])
        order = [speakers[i] for i in rng.permutation(len(speakers))]
        n_test = max(1, round(test * len(order)))
        n_val = max(1, min(round(val * len(order)), len(order) - n_test - 1))
        for i, spk in enumerate(order):
            out[spk] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return out


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def build_pairs(speech: Sequence[Sample], faces: Sequence[Sample], *, root: Path, seed: int = 0,
                faces_per_clip: dict[str, int] | None = None) -> list[Pair]:
    """The pairs: every speech clip of :data:`LABELS` (by its speaker's split) with ``faces_per_clip[split]``
    faces of its class from that split's FER-2013 partition (default 2 per training clip, 1 otherwise).

    Faces are drawn per (split, class) from a seeded permutation, without replacement until the class runs
    out (then the permutation starts again, and the pair says ``face_reused``)."""
    per = {"train": 2, "val": 1, "test": 1, **(faces_per_clip or {})}
    where = speaker_splits([s for s in speech if s.label in LABELS], seed)
    pools: dict[tuple[str, str], list[Sample]] = {}
    for f in faces:
        if f.label in LABELS:
            pools.setdefault((f.split, f.label), []).append(f)
    orders: dict[tuple[str, str], np.ndarray] = {}
    taken: dict[tuple[str, str], int] = {}
    pairs: list[Pair] = []
    clips = sorted((s for s in speech if s.label in LABELS), key=lambda s: (s.corpus, str(s.path)))
    for split in SPLITS:
        for clip in (c for c in clips if where[c.speaker] == split):
            key = (FACE_SPLITS[split], clip.label)
            pool = pools.get(key)
            if not pool:
                raise DatasetError(root, f"no FER-2013 {key[0]} faces of class {clip.label}")
            if key not in orders:
                pool.sort(key=lambda f: str(f.path))
                orders[key] = np.random.default_rng([seed, zlib.crc32(f"{key}".encode())]).permutation(len(pool))
                taken[key] = 0
            for _ in range(per[split]):
                k = taken[key]
                taken[key] += 1
                face = pool[int(orders[key][k % len(pool)])]
                n = len(pairs)
                pairs.append(Pair(pair=n, split=split, label=clip.label, clip_corpus=clip.corpus,
                                  clip_speaker=clip.speaker, clip=_relative(clip.path, root), face_split=key[0],
                                  face=_relative(face.path, root), face_reused=k >= len(pool),
                                  sequence_seed=int(zlib.crc32(f"{seed}:{n}".encode()))))
    return pairs


def write_manifest(pairs: Sequence[Pair], path: str | Path) -> Path:
    """The pairs as CSV (one row per pair, :data:`MANIFEST_FIELDS`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        w.writeheader()
        for p in pairs:
            w.writerow(asdict(p))
    return path


def read_manifest(path: str | Path) -> list[Pair]:
    """The pairs of a manifest written by :func:`write_manifest`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(path, "no paired-set manifest here (build it with benchmarks/paired_systems.py build)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != MANIFEST_FIELDS:
            raise DatasetError(path, f"columns {reader.fieldnames}, expected {list(MANIFEST_FIELDS)}")
        rows = list(reader)
    try:
        return [Pair(pair=int(r["pair"]), split=r["split"], label=r["label"], clip_corpus=r["clip_corpus"],
                     clip_speaker=r["clip_speaker"], clip=r["clip"], face_split=r["face_split"], face=r["face"],
                     face_reused=r["face_reused"] == "True", sequence_seed=int(r["sequence_seed"]))
                for r in rows]
    except (KeyError, ValueError) as err:
        raise DatasetError(path, f"malformed row: {err}") from None


# -- arrays: what training reads -----------------------------------------------------------------------------

#: Log-mel frames stored per clip (4 s at 100 frames/s; a longer clip keeps its centre).
MAX_MEL_FRAMES = 400


def clip_logmel(path: str | Path, *, trim_db: float = 30.0, max_frames: int = MAX_MEL_FRAMES) -> np.ndarray:
    """A speech clip's log-mel ``(64, <= max_frames)`` (:class:`avemo.audio.MelConfig` defaults), leading and
    trailing silence ``trim_db`` under the peak trimmed, the centre kept when longer."""
    from avemo.audio import MelConfig, log_mel
    from avemo.media import read_audio
    from avemo.training.data import trim_silence

    cfg = MelConfig()
    mel = log_mel(trim_silence(read_audio(path, sample_rate=cfg.sample_rate), trim_db), cfg)
    if mel.shape[1] > max_frames:
        start = (mel.shape[1] - max_frames) // 2
        mel = mel[:, start:start + max_frames]
    return np.asarray(mel, dtype=np.float32)


def read_face(path: str | Path) -> np.ndarray:
    """A face image as grey uint8 ``(H, W)``."""
    import cv2

    from avemo.errors import MediaError

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if Path(path).is_file() else None
    if image is None:
        raise MediaError(path, "not a readable image")
    return image


def build_arrays(pairs: Sequence[Pair], root: str | Path, path: str | Path, *, jitter: Jitter = Jitter(),
                 trim_db: float = 30.0, log: object = None) -> Path:
    """Every pair's inputs in one ``.npz``: ``video`` ``(N, T, 48, 48)`` uint8 face sequences, ``key`` ``(N,)`` the
    key frame of each sequence (:func:`avemo.faces.select_key_frames`), ``y`` ``(N,)`` indices into
    :data:`LABELS`, ``split`` ``(N,)``, ``clip_index`` ``(N,)`` into ``mel`` ``(C, 64, MAX_MEL_FRAMES)`` float16
    (each clip once, padded with its bands' floor) and ``mel_len`` ``(C,)``."""
    from avemo.datasets.fer2013 import SIZE
    from avemo.faces import select_key_frames

    root = Path(root)
    clips = sorted({p.clip for p in pairs})
    index = {c: i for i, c in enumerate(clips)}
    mel = np.zeros((len(clips), 64, MAX_MEL_FRAMES), np.float16)
    mel_len = np.zeros(len(clips), np.int32)
    for i, c in enumerate(clips):
        m = clip_logmel(root / c, trim_db=trim_db)
        mel[i] = m.min(axis=1, keepdims=True)
        mel[i, :, :m.shape[1]] = m
        mel_len[i] = m.shape[1]
        if log is not None and i % 500 == 0:
            log(f"log-mel {i}/{len(clips)}")
    video = np.zeros((len(pairs), jitter.frames, SIZE, SIZE), np.uint8)
    key = np.zeros(len(pairs), np.int16)
    for i, p in enumerate(pairs):
        face = read_face(root / p.face)
        if face.shape != (SIZE, SIZE):
            raise DatasetError(root / p.face, f"expected a {SIZE}x{SIZE} FER-2013 face, got {face.shape}")
        video[i] = face_sequence(face, p.sequence_seed, jitter)[0]
        key[i] = int(select_key_frames(list(video[i]), k=1).indices[0])
        if log is not None and i % 1000 == 0:
            log(f"faces {i}/{len(pairs)}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, video=video, key=key, y=np.array([LABELS.index(p.label) for p in pairs], np.int64),
             split=np.array([p.split for p in pairs]), clip_index=np.array([index[p.clip] for p in pairs], np.int32),
             mel=mel, mel_len=mel_len, clips=np.array(clips))
    return out
