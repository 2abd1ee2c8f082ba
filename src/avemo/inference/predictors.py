"""The per-modality predictors the analyzer runs: each takes raw crops or waveform windows and
returns probabilities over :data:`avemo.labels.EMOTIONS`, so callers never see a bundle's own label
order or preprocessing. They run the bundles' ONNX networks with onnxruntime (``backend="onnx"``,
the default: no torch is imported) or their torch modules (``backend="torch"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from avemo.labels import EMOTIONS, project_probs
from avemo.models.bundles import Bundle, FaceBundle, FusionBundle, VoiceBundle, load
from avemo.models.fusion.reliability import FusionOutput, prob_features

#: The bundles ``model="default"`` stands for.
DEFAULT_MODELS: dict[str, str] = {
    "face": "face.fervideo", "voice": "voice.multi6", "fusion": "fusion.reliability",
}


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _bundle(bundle: str | Bundle, kind: type[Bundle]) -> Any:
    from avemo.errors import ModelError

    out = load(bundle)
    if not isinstance(out, kind):
        raise ModelError(f"bundle {out.name} is a {out.kind} bundle, not a {kind.kind} bundle")
    return out


class _TorchNetwork:
    """A bundle's torch module called like an :class:`~avemo.models.onnx.OnnxNetwork` (numpy in and out)."""

    def __init__(self, bundle: Bundle) -> None:
        self.module = bundle.get_model("torch")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).float().numpy()


def _network(bundle: Bundle, backend: str, **options: Any) -> Any:
    return _TorchNetwork(bundle) if backend == "torch" else bundle.get_model(backend, **options)


class FacePredictor:
    """Aligned grey face crops ``(N, H, W)`` uint8 (and, where the bundle has a blendshape member, each face's
    expression features) -> probabilities ``(N, len(EMOTIONS))``.

    The crop network's logits are averaged over the test-time views; with a blendshape member the two are
    pooled log-linearly per face (:func:`avemo.faces.expression_model.combine_members`), a face without
    MediaPipe landmarks (NaN feature row) resting on the crop network alone; the bundle's ``logit_bias`` is
    added last. ``tta`` overrides the bundle's test-time views (``"none"`` halves the cost of ``"flip"``);
    ``int8`` runs the bundle's int8 network when it ships one (onnx backend).
    """

    def __init__(self, bundle: str | Bundle = DEFAULT_MODELS["face"], *, backend: str = "onnx",
                 tta: str | None = None, threads: int | None = 1, int8: bool = False,
                 batch_size: int = 256) -> None:
        self.bundle: FaceBundle = _bundle(bundle, FaceBundle)
        self.name = self.bundle.name
        self.labels: tuple[str, ...] = self.bundle.labels
        self.tta = tta or self.bundle.tta
        self.int8 = bool(int8 and backend == "onnx" and self.bundle.has_int8)
        self.network = _network(self.bundle, backend, **({"int8": self.int8, "threads": threads}
                                                         if backend == "onnx" else {}))
        self.blendshapes = self.bundle.blendshape_member()
        self.batch_size = batch_size

    @property
    def crop_size(self) -> int:
        """Side of the aligned crop the face path must deliver."""
        return self.bundle.input_size

    def logits(self, crops: np.ndarray, mirror: np.ndarray | None = None) -> np.ndarray:
        """Logits ``(N, C)`` over the bundle's own labels, averaged over the test-time views; with ``mirror``
        (``(N,)`` bool) one view per crop instead, the centre crop, mirrored where ``mirror`` is set (the
        analyzer mirrors every other frame of a video: a window pools both views at half the cost)."""
        from avemo.models.face_input import face_input, face_views

        pre = self.bundle.preprocessing
        x = face_input(crops, size=pre.resize, mean=pre.mean, std=pre.std)
        out = []
        for i in range(0, len(x), self.batch_size):
            if mirror is not None:
                both = face_views(x[i:i + self.batch_size], crop=pre.crop, mode="flip")  # (2, n, ...)
                pick = np.asarray(mirror[i:i + self.batch_size], dtype=np.intp)
                out.append(self.network(np.ascontiguousarray(both[pick, np.arange(len(pick))])))
                continue
            views = face_views(x[i:i + self.batch_size], crop=pre.crop, mode=self.tta)
            v, n = views.shape[:2]
            out.append(self.network(views.reshape(v * n, *views.shape[2:])).reshape(v, n, -1).mean(0))
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), dtype=np.float32)

    def members(self, crops: np.ndarray, features: np.ndarray | None = None, mirror: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(N, C)`` over the bundle's own labels, and which faces used the blendshape member.

        ``features``: ``(N, F)`` expression features (:func:`avemo.faces.expression_features.face_features`;
        NaN rows where a face has no landmarks), or None (the crop network alone); ``mirror``: see
        :meth:`logits`."""
        from avemo.faces.expression_model import combine_members

        pre = self.bundle.preprocessing
        crop = softmax(self.logits(crops, mirror))
        blend = None
        if self.blendshapes is not None and features is not None and len(crop):
            f = np.asarray(features, dtype=np.float32)
            ok = np.isfinite(f).all(axis=1)
            blend = np.full_like(crop, np.nan)
            if ok.any():
                blend[ok] = self.blendshapes.predict_proba(f[ok])
        return combine_members(crop, blend, {"crop": 1.0, "blendshapes": pre.blendshape_weight},
                               bias=np.asarray(pre.logit_bias) if any(pre.logit_bias) else None)

    def probs(self, crops: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(N, C)`` over the bundle's own labels."""
        return self.members(crops, features)[0]

    def predict_faces(self, crops: np.ndarray, features: np.ndarray | None = None, mirror: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities ``(N, len(EMOTIONS))`` (0 for classes the bundle does not have), and which faces used
        the blendshape member (``mirror``: see :meth:`logits`)."""
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32), np.zeros(0, dtype=bool)
        probs, used = self.members(np.asarray(crops), features, mirror)
        return project_probs(probs, self.labels, EMOTIONS), used

    def predict(self, crops: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """Probabilities ``(N, len(EMOTIONS))`` (0 for classes the bundle does not have)."""
        return self.predict_faces(crops, features)[0]

    def features(self, faces: list) -> np.ndarray | None:
        """The expression features the blendshape member needs, one row per face (NaN where a face has no
        landmarks), or None when the bundle has no such member (nothing is computed then)."""
        if self.blendshapes is None:
            return None
        from avemo.faces.expression_features import face_features, feature_names

        rows = [face_features(f) for f in faces]
        nan = np.full(len(feature_names()), np.nan, dtype=np.float32)
        return np.stack([nan if r is None else np.asarray(r, dtype=np.float32) for r in rows]) if rows else None

    def pool(self, probs: np.ndarray) -> np.ndarray:
        """A window's probabilities from its frames' (the bundle's pooling rule)."""
        from avemo.faces.expression_model import pool_frames

        return pool_frames(probs, self.bundle.preprocessing.pooling)


class VoicePredictor:
    """Speech at the bundle's ``sample_rate`` -> probabilities ``(N, len(EMOTIONS))`` per window.

    :meth:`predict_windows` (a mono wave and ``(start_s, end_s)`` windows in it) serves every voice bundle: a
    ``log-mel`` bundle's ONNX network scores each window's samples (the log-mel front end is part of the
    network); a ``whisper-base`` bundle encodes the wave in chunks on an absolute grid, each chunk once, and
    its head pools each window's frames. :meth:`predict` takes cut windows ``(N, samples)`` (log-mel bundles).
    """

    def __init__(self, bundle: str | Bundle = DEFAULT_MODELS["voice"], *, batch_size: int = 32,
                 backend: str = "onnx", threads: int | None = 1) -> None:
        self.bundle: VoiceBundle = _bundle(bundle, VoiceBundle)
        self.name = self.bundle.name
        self.sample_rate = self.bundle.sample_rate
        self.network = _network(self.bundle, backend, **({"threads": threads} if backend == "onnx" else {}))
        # a whisper-base runtime encodes chunks on a grid; its torch module scores each window alone
        self.chunked = self.bundle.front_end == "whisper-base" and backend != "torch"
        self.batch_size = batch_size

    def predict(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if len(windows) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        if self.chunked:
            return np.concatenate([self.network.predict(w) for w in windows])
        logits = [self.network(windows[i:i + self.batch_size]) for i in range(0, len(windows), self.batch_size)]
        return project_probs(softmax(np.concatenate(logits)), self.bundle.labels, EMOTIONS)

    def predict_windows(self, wave: np.ndarray, windows: list, *, offset_s: float = 0.0,
                        cache: dict | None = None) -> np.ndarray:
        """Probabilities for ``windows`` (:class:`avemo.audio.Window`, absolute times) of ``wave``, whose first
        sample is at ``offset_s``; ``cache`` keeps a chunked encoder's chunks across calls on one stream."""
        if not windows:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        if self.chunked:
            return self.network.predict(wave, [(w.start, w.end) for w in windows], offset_s=offset_s, cache=cache)
        from avemo.audio import Window, frame_windows

        local = [Window(w.start - offset_s, w.end - offset_s) for w in windows]
        span = max(w.end - w.start for w in windows)
        return self.predict(frame_windows(wave, self.sample_rate, local, window_s=span))

    def audio_needed(self, end_s: float) -> float:
        """Seconds of audio from the start needed before a window ending at ``end_s`` can be scored."""
        return self.network.audio_needed(end_s) if self.chunked else end_s

    def audio_from(self, start_s: float) -> float:
        """Where the audio a window starting at ``start_s`` needs begins."""
        return self.network.audio_from(start_s) if self.chunked else start_s

    def forget(self, cache: dict, before_s: float) -> None:
        """Drop the cached chunks that end at or before ``before_s`` (no window left needs them)."""
        if self.chunked:
            for k in [k for k in cache if (k + 1) * self.network.chunk_s <= before_s + 1e-9]:
                del cache[k]


class Fusion:
    """The fusion bundle: per-window face, voice (and text) probabilities over EMOTIONS -> fused probabilities, each
    modality's weight in every window, and whether the window is uncertain.

    Each modality's own label set is passed on, so a face model without *calm* (or text without neutral) is handled
    by the fusion's convention for missing classes, not read as "calm: 0". Every fusion architecture gives the same
    :class:`~avemo.models.fusion.reliability.FusionOutput`: ``reliability_fusion`` weights each window by the
    evidence its modalities carry about themselves, ``decision_fusion`` and the log-linear ``fusion`` have fixed
    weights (renormalised over the modalities present in the window).
    """

    #: a window whose fused label's probability is under this is flagged uncertain (fusions without their own)
    UNCERTAIN_BELOW = 0.5

    def __init__(self, bundle: str | Bundle = DEFAULT_MODELS["fusion"]) -> None:
        self.bundle: FusionBundle = _bundle(bundle, FusionBundle)
        self.name = self.bundle.name
        self.modalities: tuple[str, ...] = tuple(self.bundle.modalities)
        self.model = self.bundle.get_model()

    @property
    def flags(self) -> dict[str, tuple[str, ...]]:
        """Per modality, the per-window columns (face ``face_blendshapes``, voice ``speech_fraction``, text
        ``text_emotion_words``) this fusion weighs besides the probabilities (fixed-weight fusions: none)."""
        if self.bundle.architecture != "reliability_fusion":
            return {}
        return {m: tuple(v) for m, v in self.bundle.preprocessing.flags.items()}

    def evidence_from(self, columns: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """``evidence`` for :meth:`fuse_details` from per-window columns by name (``(n,)`` each); a column not
        given is NaN (the bundle's default)."""
        return {m: np.column_stack([np.asarray(columns.get(f, np.full(n, np.nan)), dtype=np.float64) for f in names])
                for m, names in self.flags.items() if names}

    def fuse_details(self, probs: dict[str, np.ndarray | None], labels: dict[str, tuple[str, ...]] | None = None,
                     evidence: dict[str, np.ndarray | None] | None = None) -> FusionOutput:
        """``probs[m]``: ``(N, 8)`` over EMOTIONS, NaN rows where ``m`` is absent (or None); ``labels[m]``: the
        classes model ``m`` really has (default: all); ``evidence[m]``: the per-window flags of the bundle
        (face: ``face_blendshapes``, voice: ``speech_fraction``, text: ``text_emotion_words``; ``(N, 1)``; see
        :meth:`evidence_from`). Modalities the bundle does not fuse are left out."""
        given: dict[str, np.ndarray] = {}
        labs: dict[str, tuple[str, ...]] = {}
        for m, p in probs.items():
            if p is None or m not in self.modalities:
                continue
            names = tuple((labels or {}).get(m, EMOTIONS))
            given[m] = np.asarray(p)[:, [EMOTIONS.index(name) for name in names]]
            labs[m] = names
        if self.bundle.architecture != "fusion":
            ev = {m: e for m, e in (evidence or {}).items() if m in given}
            return self.model.fuse_details(given, labs, ev)
        fused = self.model.fuse(given, labels=labs)
        n = len(fused)
        fixed = self.bundle.weights
        raw = np.zeros((n, len(self.modalities)), dtype=np.float64)
        ev_out = {}
        for m, a in given.items():
            ok = ~np.isnan(a).any(axis=1)
            raw[:, self.modalities.index(m)] = np.where(ok, fixed.get(m, 1.0), 0.0)
            ev_out[m] = np.where(ok[:, None], prob_features(np.nan_to_num(a, nan=1.0 / a.shape[1])), np.nan)
        weights = raw / np.clip(raw.sum(1, keepdims=True), 1e-12, None)
        covered = ~np.isnan(fused).any(axis=1)
        uncertain = covered & (np.nan_to_num(fused, nan=0.0).max(1) < self.UNCERTAIN_BELOW)
        return FusionOutput(fused, weights.astype(np.float32), uncertain, self.modalities, ev_out)

    def fuse(self, probs: dict[str, np.ndarray | None], face_labels: tuple[str, ...] = EMOTIONS) -> np.ndarray:
        """``{"face": (N, 8), "voice": (N, 8)}`` over EMOTIONS, NaN rows where absent -> fused (N, 8)."""
        return self.fuse_details(probs, {"face": face_labels}).fused
