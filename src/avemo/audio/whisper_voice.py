"""Voice emotion from Whisper base frames and a small trained head, in numpy (no torch at inference).

Dataflow::

    16 kHz wave ──► chunks (3 s default, at most 30 s) ──► Whisper encoder, one pass per chunk
        (layer ``settings.layer``) ──►
        frames (T, 512) at 50 Hz ──► each window's frames ──► head ──► softmax(logits / T) over EMOTIONS

Heads (trained by :mod:`avemo.training.speech_heads`, saved with :func:`save_head`):

* ``linear``: mean and std over the window's frames, standardised with the training corpora's mean/std,
  then one linear layer;
* ``attn``: per-frame standardisation, a GELU frame MLP, multi-head attentive statistics pooling, linear;
* ``blend``: several of these (``settings["members"]``: name, kind, layers, heads; arrays prefixed
  ``<name>.``), the mean of their log-softmax outputs plus the blend's ``bias`` (a class prior).

A folder holds ``head.safetensors`` (the arrays) and ``settings.json`` (layer, head kind, labels,
temperature, what it was trained on). :func:`pool_windows` cuts windows out of one encoder pass over a
chunk. Whisper's frames depend on their absolute position (its positional encodings) and on the whole
chunk (global attention), and the heads are trained on clips of 1-14 s (mostly 2-5 s) encoded alone: a
window pooled from a long chunk drifts from the window encoded alone (measured on 22 s of real speech,
total variation between the two probability vectors, mean over 3 s windows: 0.13 with 3 s chunks, 0.18
with 5 s, 0.29 with 10 s, 0.41 with 30 s). So :meth:`WhisperVoiceModel.predict` encodes consecutive 3 s
chunks (one pass each, the same total audio as one 30 s pass) and pools each window's frames across them;
``tests/test_whisper_voice.py`` states the tolerance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avemo.audio.whisper import FRAME_RATE, MAX_FRAMES, SAMPLES_PER_FRAME
from avemo.errors import ModelError
from avemo.labels import EMOTIONS

HEAD_FILE, SETTINGS_FILE = "head.safetensors", "settings.json"


def save_head(folder: str | Path, arrays: dict[str, np.ndarray], settings: dict) -> Path:
    """Write a head's arrays (float32) and its settings to ``folder``."""
    from safetensors.numpy import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, str(out / HEAD_FILE))
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=1) + "\n")
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz & Stegun 7.1.26), in numpy: importing scipy.special would cost the
    analysis 0.3 s."""
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _head_logits(kind: str, a: dict[str, np.ndarray], window_frames: Sequence[np.ndarray], blocks: int,
                 heads: int | None, name: str) -> np.ndarray:
    """One head's logits: ``linear`` (per layer block mean then std, standardised, one layer) or ``attn``
    (standardised frames, GELU frame MLP, multi-head attentive statistics pooling, one layer)."""
    if kind == "linear":
        x = np.stack([np.concatenate([v for b in np.split(f, blocks, axis=1) for v in (b.mean(0), b.std(0))])
                      for f in window_frames])
        return ((x - a["mean"]) / a["std"]) @ a["weight"].T + a["bias"]
    if kind == "attn":  # the frame MLP and attention scores in one pass over every window's frames
        hs = _gelu(((np.concatenate(window_frames) - a["mean"]) / a["std"]) @ a["proj.weight"].T + a["proj.bias"])
        ss = hs @ a["att.weight"].T + a["att.bias"]
        ends = np.cumsum([len(f) for f in window_frames])
        out = []
        for h, s in zip(np.split(hs, ends[:-1]), np.split(ss, ends[:-1])):
            w = _softmax(s.T).T  # (T, heads), over time
            t, d = h.shape
            hh = h.reshape(t, int(heads), d // int(heads))
            mu = np.einsum("th,thd->hd", w, hh)
            sd = np.sqrt(np.maximum(np.einsum("th,thd->hd", w, hh**2) - mu**2, 1e-6))
            out.append(np.concatenate([mu.reshape(-1), sd.reshape(-1)]) @ a["fc.weight"].T + a["fc.bias"])
        return np.stack(out)
    raise ModelError(f"{name}: unknown head kind {kind!r}")


def window_slices(windows: Sequence[tuple[float, float]], n_frames: int) -> list[slice]:
    """Frame slices (50 Hz) of ``(start_s, end_s)`` windows, clipped to ``[0, n_frames)``; at least one frame."""
    out = []
    for start, end in windows:
        a = min(max(0, int(round(start * FRAME_RATE))), max(0, n_frames - 1))
        b = min(n_frames, max(a + 1, int(round(end * FRAME_RATE))))
        out.append(slice(a, b))
    return out


def pool_windows(frames: np.ndarray, windows: Sequence[tuple[float, float]]) -> list[np.ndarray]:
    """The frames each window covers, from one encoder pass over the chunk that holds them."""
    return [frames[s] for s in window_slices(windows, len(frames))]


class WhisperVoiceModel:
    """A trained voice head on a Whisper layer: waves (and windows within them) -> probabilities over
    :data:`avemo.labels.EMOTIONS`.

    ``runtime``: ``"onnx"`` (default: onnxruntime, float32, the encoder truncated at the head's layer, built
    into the cache on first use), ``"numpy"`` (float32, any layer; slower) or ``"ct2"`` (CTranslate2 int8;
    the final layer only).
    """

    def __init__(self, arrays: dict[str, np.ndarray], settings: dict, *, runtime: str | None = None,
                 threads: int = 1, encoder_root: str | Path | None = None, name: str = "voice head") -> None:
        self.name = name
        self.settings = dict(settings)
        self.arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        self.labels = tuple(self.settings["labels"])
        if self.labels != EMOTIONS:
            raise ModelError(f"{name}: labels {self.labels} are not {EMOTIONS}")
        self.layer = self.settings.get("layer")
        self.layers = self.settings.get("layers")  # several layers: each pooled, concatenated in this order
        self.top = max(self.layers) if self.layers else self.layer
        self.kind = self.settings["head"]
        self.temperature = float(self.settings.get("temperature", 1.0))
        self.chunk_s = float(self.settings.get("chunk_s", 3.0))
        self.int8 = bool(self.settings.get("int8", False))
        self.runtime = runtime or self.settings.get("runtime", "onnx")
        if self.runtime not in ("onnx", "numpy", "ct2"):
            raise ModelError(f"{name}: unknown encoder runtime {self.runtime!r} (onnx, numpy or ct2)")
        self._threads, self._root = threads, encoder_root
        self._encoder = None

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs) -> WhisperVoiceModel:
        """A head saved by :func:`save_head` (``head.safetensors`` and ``settings.json``)."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            settings = json.loads((folder / SETTINGS_FILE).read_text())
            arrays = load_file(str(folder / HEAD_FILE))
        except (OSError, ValueError) as err:
            raise ModelError(f"{folder}: cannot read the voice head ({err})") from None
        return cls(arrays, settings, name=str(folder), **kwargs)

    # -- encoder
    def _enc(self):
        if self._encoder is None:
            if self.runtime == "ct2":
                if self.layer != "final" or self.layers:
                    raise ModelError(f"{self.name}: CTranslate2 returns only the final layer, the head uses "
                                     f"layer {self.layer}")
                from avemo.audio.whisper import WhisperEncoder

                self._encoder = WhisperEncoder(threads=self._threads, root=self._root)
            elif self.runtime == "onnx":
                from avemo.audio.whisper import OnnxWhisperEncoder

                self._encoder = OnnxWhisperEncoder(self.top, threads=self._threads, root=self._root,
                                                   every_layer=bool(self.layers), int8=self.int8)
            else:
                from avemo.audio.whisper import NumpyWhisperEncoder

                top = 6 if self.top == "final" else int(self.top)
                self._encoder = NumpyWhisperEncoder(self._root, max_layer=top)
        return self._encoder

    def encode(self, wave: np.ndarray, chunk_s: float = 3.0) -> np.ndarray:
        """Frames ``(T, 512)`` of the head's layer (``(T, 512 k)`` for a head on ``k`` layers), one encoder
        pass per chunk of ``chunk_s`` seconds (at most 30), concatenated."""
        enc = self._enc()
        x = np.asarray(wave, dtype=np.float32).reshape(-1)
        chunk = min(MAX_FRAMES, max(1, int(round(chunk_s * FRAME_RATE)))) * SAMPLES_PER_FRAME
        parts = []
        for a in range(0, max(1, x.size), chunk):
            piece = x[a:a + chunk]
            if self.layers:  # (T, 512 * len(layers)), layer blocks side by side
                out = enc.encode_layers(piece, tuple(self.layers))
                parts.append(np.concatenate([out[k] for k in self.layers], axis=1))
            else:
                parts.append(enc.encode(piece, self.layer) if self.runtime == "numpy" else enc.encode(piece))
        return np.concatenate(parts).astype(np.float32)

    # -- head
    def logits(self, window_frames: Sequence[np.ndarray]) -> np.ndarray:
        """Logits ``(n, 8)`` (before the temperature) for each window's frames (``(T, 512 k)``, the head's layers
        side by side). A ``blend`` averages its members' log-softmax outputs and adds its own ``bias``."""
        if self.kind != "blend":
            return _head_logits(self.kind, self.arrays, window_frames, len(self.layers) if self.layers else 1,
                                self.settings.get("heads"), self.name)
        members = self.settings["members"]
        z = np.zeros((len(window_frames), len(EMOTIONS)))
        for m in members:
            prefix = f"{m['name']}."
            arrays = {k[len(prefix):]: v for k, v in self.arrays.items() if k.startswith(prefix)}
            cols = [self.layers.index(k) for k in m["layers"]]
            frames = [np.concatenate([f[:, 512 * i:512 * (i + 1)] for i in cols], axis=1) for f in window_frames]
            z += _log_softmax(_head_logits(m["kind"], arrays, frames, len(cols), m.get("heads"), self.name))
        return z / len(members) + self.arrays["bias"]

    def probs_from_frames(self, window_frames: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities ``(n, 8)`` over EMOTIONS for each window's frames."""
        if len(window_frames) == 0:
            return np.zeros((0, len(EMOTIONS)), np.float32)
        return _softmax(self.logits(window_frames) / self.temperature).astype(np.float32)

    # -- chunks on an absolute grid, so a stream scores its windows as the whole file would
    def audio_needed(self, end_s: float) -> float:
        """Seconds of audio (from the start) needed to score a window ending at ``end_s``: its last chunk whole."""
        return math.ceil(end_s / self.chunk_s - 1e-9) * self.chunk_s

    def audio_from(self, start_s: float) -> float:
        """Where the audio a window starting at ``start_s`` needs begins (its first chunk's start)."""
        return math.floor(start_s / self.chunk_s + 1e-9) * self.chunk_s

    def predict(self, wave: np.ndarray, windows: Sequence[tuple[float, float]] | None = None, *,
                chunk_s: float | None = None, offset_s: float = 0.0,
                cache: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Probabilities ``(n, 8)`` for ``(start_s, end_s)`` windows of a 16 kHz wave (default: the whole wave as
        one window, encoded in one pass if at most 30 s).

        With windows, the wave is encoded in chunks of ``chunk_s`` (default the head's, 3 s) on the grid
        ``k * chunk_s`` of absolute time (``offset_s`` is the time of ``wave[0]``, and window times are
        absolute too); only the chunks the windows cover are encoded, each once (``cache``, chunk index ->
        frames, keeps them across calls on one stream), and each window pools the frames it covers. A chunk is
        encoded as far as the wave goes: callers hand over whole chunks except at the end of a file.
        """
        x = np.asarray(wave, dtype=np.float32).reshape(-1)
        if windows is None:
            frames = self.encode(x, chunk_s or MAX_FRAMES / FRAME_RATE)
            return self.probs_from_frames(pool_windows(frames, [(0.0, x.size / 16000.0)]))
        c = float(chunk_s or self.chunk_s)
        per = int(round(c * FRAME_RATE))
        cache = {} if cache is None else cache
        pooled = []
        for start, end in windows:
            first, last = int(math.floor(start / c + 1e-9)), int(math.ceil(end / c - 1e-9)) - 1
            for k in range(first, max(first, last) + 1):
                if k not in cache:
                    a = max(0, int(round((k * c - offset_s) * 16000)))
                    cache[k] = self.encode(x[a:a + per * SAMPLES_PER_FRAME], c)
            frames = np.concatenate([cache[k] for k in range(first, max(first, last) + 1)])
            a = int(round((start - first * c) * FRAME_RATE))
            b = max(a + 1, min(len(frames), int(round((end - first * c) * FRAME_RATE))))
            pooled.append(frames[min(a, len(frames) - 1):b])
        return self.probs_from_frames(pooled)
