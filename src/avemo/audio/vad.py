"""Voice activity with Silero VAD's ONNX model, run directly with onnxruntime (no torch needed).

The protocol follows silero-vad's own ``OnnxWrapper``: 16 kHz audio in 512-sample chunks; each
call gets the previous call's last 64 samples prepended (the *context*, zeros at first) and the
recurrent ``state`` (2, 1, 128) it returned; the output is one speech probability per chunk
(32 ms). Segments come from the same hysteresis as silero's ``get_speech_timestamps``: speech
starts at ``p >= threshold``, ends after ``min_silence_ms`` below ``threshold - 0.15``; segments
shorter than ``min_speech_ms`` are dropped, the rest padded by ``pad_ms``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avemo.audio.dsp import as_mono_float32, resample
from avemo.errors import AvemoError

VAD_SAMPLE_RATE = 16000
CHUNK = 512  # samples per probability at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous chunk prepended to each call


@dataclass(frozen=True)
class SpeechSegment:
    """A stretch of speech, in seconds from the start of the waveform."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def default_model_path() -> Path:
    """``silero_vad/data/silero_vad.onnx`` inside the installed silero-vad package (not imported)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise AvemoError(
            "the silero-vad package is not installed, so its VAD model is missing "
            "(pip install --no-deps silero-vad==6.2.3: avemo runs its ONNX model, not its torch code; or pass "
            "model_path=)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"


class VoiceActivityDetector:
    """Silero VAD over whole waveforms. One onnxruntime session per detector (one thread); a
    detector is not meant to be shared between threads, give each thread its own."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        path = Path(model_path) if model_path is not None else default_model_path()
        if not path.is_file():
            raise AvemoError(f"{path}: Silero VAD model file not found (is silero-vad installed intact?)")
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a truncated or foreign file
            raise AvemoError(f"{path}: cannot load the Silero VAD model: {exc}") from exc
        self.model_path = path
        self._sr = np.array(VAD_SAMPLE_RATE, dtype=np.int64)
        # The same network exported for whole sequences (shipped beside the default model): one call
        # per 512 chunks instead of one per chunk, identical probabilities, about 2x faster.
        sequence = path.with_name("silero_vad_16k_sequence.onnx")
        self._sequence = None
        if model_path is None and sequence.is_file():
            try:
                self._sequence = ort.InferenceSession(
                    str(sequence), sess_options=opts, providers=["CPUExecutionProvider"]
                )
            except Exception:  # fall back to the per-chunk model
                self._sequence = None

    def probabilities(self, wave: np.ndarray, sr: int = VAD_SAMPLE_RATE) -> np.ndarray:
        """Speech probability per 32 ms chunk (512 samples at 16 kHz; the last chunk zero-padded).

        ``wave`` is mono float at ``sr``; other rates are resampled to 16 kHz first.
        """
        return self._probs16k(resample(as_mono_float32(wave), sr, VAD_SAMPLE_RATE))

    def _probs16k(self, x: np.ndarray) -> np.ndarray:
        n = -(-x.size // CHUNK)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        if self._sequence is not None:
            return self._probs16k_sequence(x, n)
        padded = np.zeros(n * CHUNK, dtype=np.float32)
        padded[: x.size] = x
        state = np.zeros((2, 1, 128), dtype=np.float32)
        context = np.zeros((1, CONTEXT), dtype=np.float32)
        probs = np.empty(n, dtype=np.float32)
        run = self._session.run
        for i in range(n):
            inp = np.concatenate([context, padded[None, i * CHUNK : (i + 1) * CHUNK]], axis=1)
            out, state = run(None, {"input": inp, "state": state, "sr": self._sr})
            probs[i] = out.reshape(-1)[0]
            context = inp[:, -CONTEXT:]
        return probs

    def _probs16k_sequence(self, x: np.ndarray, n: int, block: int = 512) -> np.ndarray:
        """All chunks at once: row i is the 64-sample context before chunk i, then chunk i."""
        padded = np.zeros(CONTEXT + n * CHUNK, dtype=np.float32)
        padded[CONTEXT : CONTEXT + x.size] = x
        frames = padded[np.arange(n)[:, None] * CHUNK + np.arange(CONTEXT + CHUNK)[None, :]]
        h = np.zeros((1, 1, 128), dtype=np.float32)
        c = np.zeros((1, 1, 128), dtype=np.float32)
        out = []
        for start in range(0, n, block):
            probs, h, c = self._sequence.run(None, {"input": frames[start : start + block], "h": h, "c": c})
            out.append(probs)
        return np.concatenate(out).astype(np.float32).reshape(-1)

    def stream(self) -> VadStream:
        """A stateful scorer for audio that arrives in pieces (16 kHz): ``feed`` then ``finish`` give
        the same probabilities as :meth:`probabilities` on the whole waveform."""
        return VadStream(self)

    def segments(
        self,
        wave: np.ndarray,
        sr: int = VAD_SAMPLE_RATE,
        threshold: float = 0.5,
        min_speech_ms: float = 250,
        min_silence_ms: float = 100,
        pad_ms: float = 30,
    ) -> list[SpeechSegment]:
        """Speech segments in seconds, within ``[0, len(wave) / sr]``."""
        x = resample(as_mono_float32(wave), sr, VAD_SAMPLE_RATE)
        return segments_from_probs(
            self._probs16k(x),
            n_samples=x.size,
            threshold=threshold,
            min_speech_ms=min_speech_ms,
            min_silence_ms=min_silence_ms,
            pad_ms=pad_ms,
        )


def segments_from_probs(
    probs: Sequence[float] | np.ndarray,
    *,
    n_samples: int | None = None,
    threshold: float = 0.5,
    min_speech_ms: float = 250,
    min_silence_ms: float = 100,
    pad_ms: float = 30,
    neg_threshold: float | None = None,
) -> list[SpeechSegment]:
    """Silero's hysteresis over per-chunk probabilities (16 kHz, 512-sample chunks) -> segments."""
    sr = VAD_SAMPLE_RATE
    if n_samples is None:
        n_samples = len(probs) * CHUNK
    min_speech = sr * min_speech_ms / 1000
    min_silence = sr * min_silence_ms / 1000
    pad = sr * pad_ms / 1000
    if neg_threshold is None:
        neg_threshold = max(threshold - 0.15, 0.01)

    spans: list[list[float]] = []
    start: int | None = None
    temp_end = 0
    for i, p in enumerate(probs):
        cur = i * CHUNK
        if p >= threshold and temp_end:
            temp_end = 0
        if p >= threshold and start is None:
            start = cur
            continue
        if start is not None and p < neg_threshold:
            if not temp_end:
                temp_end = cur
            if cur - temp_end < min_silence:
                continue
            if temp_end - start > min_speech:
                spans.append([start, temp_end])
            start, temp_end = None, 0
    if start is not None and n_samples - start > min_speech:
        spans.append([start, n_samples])

    for i, s in enumerate(spans):
        if i == 0:
            s[0] = max(0.0, s[0] - pad)
        if i < len(spans) - 1:
            gap = spans[i + 1][0] - s[1]
            if gap < 2 * pad:
                s[1] += gap // 2
                spans[i + 1][0] = max(0.0, spans[i + 1][0] - gap // 2)
            else:
                s[1] = min(n_samples, s[1] + pad)
                spans[i + 1][0] = max(0.0, spans[i + 1][0] - pad)
        else:
            s[1] = min(n_samples, s[1] + pad)
    return [SpeechSegment(float(a) / sr, float(b) / sr) for a, b in spans]


def speech_fraction(segments: Iterable[SpeechSegment], start: float, end: float) -> float:
    """The fraction of ``[start, end]`` (seconds) covered by speech segments (overlaps counted once)."""
    if end <= start:
        return 0.0
    spans = sorted((max(s.start, start), min(s.end, end)) for s in segments)
    covered, cur_a, cur_b = 0.0, None, None
    for a, b in spans:
        if b <= a:
            continue
        if cur_b is None or a > cur_b:
            if cur_b is not None:
                covered += cur_b - cur_a
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_b is not None:
        covered += cur_b - cur_a
    return min(1.0, covered / (end - start))


class VadStream:
    """Silero VAD over a stream: carries the recurrent state and the 64-sample context across pieces."""

    def __init__(self, detector: VoiceActivityDetector) -> None:
        self.detector = detector
        self._rest = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)

    def feed(self, wave: np.ndarray) -> np.ndarray:
        """Probabilities of the whole 512-sample chunks now complete (16 kHz mono input)."""
        x = np.concatenate([self._rest, as_mono_float32(wave)])
        n = x.size // CHUNK
        self._rest = x[n * CHUNK :]
        return self._score(x[: n * CHUNK], n)

    def finish(self) -> np.ndarray:
        """The probability of the last, zero-padded partial chunk (empty when there is none)."""
        if self._rest.size == 0:
            return np.zeros(0, dtype=np.float32)
        x = np.zeros(CHUNK, dtype=np.float32)
        x[: self._rest.size] = self._rest
        self._rest = np.zeros(0, dtype=np.float32)
        return self._score(x, 1)

    def _score(self, x: np.ndarray, n: int, block: int = 512) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        padded = np.concatenate([self._context, x])
        frames = padded[np.arange(n)[:, None] * CHUNK + np.arange(CONTEXT + CHUNK)[None, :]]
        self._context = x[-CONTEXT:].copy()
        det = self.detector
        out = []
        if det._sequence is not None:
            for start in range(0, n, block):
                probs, self._h, self._c = det._sequence.run(
                    None, {"input": frames[start : start + block], "h": self._h, "c": self._c}
                )
                out.append(np.asarray(probs, dtype=np.float32).reshape(-1))
        else:
            for row in frames:
                prob, self._state = det._session.run(None, {"input": row[None], "state": self._state, "sr": det._sr})
                out.append(np.asarray(prob, dtype=np.float32).reshape(-1))
        return np.concatenate(out)
