"""The per-modality predictors the analyzer runs: each takes raw crops or waveform windows and
returns probabilities over :data:`avemo.labels.EMOTIONS`, so callers never see a bundle's own label
order or preprocessing."""

from __future__ import annotations

import numpy as np
import torch

from avemo.labels import EMOTIONS, project_probs
from avemo.models.registry import Bundle, load

#: The bundles ``model="default"`` stands for.
DEFAULT_MODELS: dict[str, str] = {
    "face": "face.fer2013", "voice": "voice.ravdess8", "fusion": "fusion.fer2013_ravdess",
}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class FacePredictor:
    """Aligned grey face crops ``(N, H, W)`` uint8 -> probabilities ``(N, len(EMOTIONS))``.

    ``backend="onnx"`` runs the network with onnxruntime (exported once into the cache);
    ``tta`` overrides the bundle's test-time views (``"none"`` halves the cost of ``"flip"``);
    ``int8`` runs the bundle's shipped int8 network (``avemo export --int8``) when it has one.
    """

    def __init__(self, bundle: str | Bundle = DEFAULT_MODELS["face"], *, backend: str = "onnx",
                 tta: str | None = None, threads: int | None = None, int8: bool = False) -> None:
        from avemo.models.encoders.visual import FaceEmotionModel

        self.model = FaceEmotionModel(bundle)
        self.name = self.model.bundle.name
        self.crop_size = int(self.model.preprocessing.get("resize", 48))
        if tta is not None:
            self.model.preprocessing["tta"] = tta
        self.int8 = False
        if backend == "onnx":
            from avemo.inference.runtime import OnnxModule, onnx_cache_path, shipped_int8

            crop = int(self.model.preprocessing["crop"])
            quantized = shipped_int8(self.model.bundle) if int8 else None
            self.int8 = quantized is not None
            self.model.model = OnnxModule(self.model.model, torch.zeros(2, 1, crop, crop),
                                          quantized or onnx_cache_path(self.model.bundle, "crops"), threads=threads)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        return project_probs(self.model.predict(np.asarray(crops)), self.model.labels, EMOTIONS)


class VoicePredictor:
    """16 kHz mono windows ``(N, samples)`` float32 -> probabilities ``(N, len(EMOTIONS))``.

    The log-mel front end and the network run as one module (``backend="onnx"``: one onnxruntime
    graph, exported once into the cache).
    """

    def __init__(self, bundle: str | Bundle = DEFAULT_MODELS["voice"], *, batch_size: int = 32,
                 backend: str = "onnx", threads: int | None = None) -> None:
        from avemo.audio import LogMel, MelConfig

        self.bundle = load(bundle) if isinstance(bundle, str) else bundle
        self.name = self.bundle.name
        self.mel_config = MelConfig.from_dict(self.bundle.preprocessing.get("mel", {}))
        self.sample_rate = self.mel_config.sample_rate
        self.network: torch.nn.Module | object = torch.nn.Sequential(LogMel(self.mel_config), self.bundle.model).eval()
        if backend == "onnx":
            from avemo.inference.runtime import OnnxModule, onnx_cache_path

            self.network = OnnxModule(self.network, torch.zeros(2, 3 * self.sample_rate),
                                      onnx_cache_path(self.bundle, "wave"), dynamic_length=True, threads=threads)
        self.batch_size = batch_size

    @torch.inference_mode()
    def predict(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if len(windows) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        logits = [self.network(torch.from_numpy(windows[i:i + self.batch_size])).numpy()
                  for i in range(0, len(windows), self.batch_size)]
        return project_probs(_softmax(np.concatenate(logits)), self.bundle.labels, EMOTIONS)


class Fusion:
    """The fusion bundle: per-window face and voice probabilities over EMOTIONS -> fused probabilities.

    The face model's own label set is passed on, so a face model without *calm* is handled by the
    fusion's convention (:func:`avemo.models.fusion.late.onto_emotions`), not read as "calm: 0".
    """

    def __init__(self, bundle: str | Bundle = DEFAULT_MODELS["fusion"]) -> None:
        self.bundle = load(bundle) if isinstance(bundle, str) else bundle
        self.name = self.bundle.name

    def fuse(self, probs: dict[str, np.ndarray], face_labels: tuple[str, ...] = EMOTIONS) -> np.ndarray:
        """``{"face": (N, 8), "voice": (N, 8)}`` over EMOTIONS, NaN rows where absent -> fused (N, 8)."""
        idx = [EMOTIONS.index(name) for name in face_labels]
        given = {m: p[:, idx] if m == "face" else p for m, p in probs.items()}
        return self.bundle.model.fuse(given, labels={"face": face_labels})


def load_fusion(name: str = DEFAULT_MODELS["fusion"]) -> Fusion:
    """The fusion bundle ``name`` ready for :meth:`Fusion.fuse`."""
    return Fusion(name)
