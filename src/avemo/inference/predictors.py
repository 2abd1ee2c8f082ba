"""The per-modality predictors the analyzer runs: each takes raw crops or waveform windows and
returns probabilities over :data:`avemo.labels.EMOTIONS`, so callers never see a bundle's own label
order or preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from avemo.labels import EMOTIONS, project_probs
from avemo.models.registry import Bundle, load

#: The bundles ``model="default"`` stands for.
DEFAULT_MODELS: dict[str, str] = {
    "face": "face.fer2013", "voice": "voice.ravdess8", "fusion": "fusion.ravdess",
}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class FacePredictor:
    """Aligned grey face crops ``(N, H, W)`` uint8 -> probabilities ``(N, len(EMOTIONS))``.

    ``backend="onnx"`` runs the network with onnxruntime (exported once into the cache);
    ``tta`` overrides the bundle's test-time views (``"none"`` halves the cost of ``"flip"``).
    """

    def __init__(self, bundle: str | Bundle = DEFAULT_MODELS["face"], *, backend: str = "onnx",
                 tta: str | None = None) -> None:
        from avemo.models.encoders.visual import FaceEmotionModel

        self.model = FaceEmotionModel(bundle)
        self.name = self.model.bundle.name
        self.crop_size = int(self.model.preprocessing.get("resize", 48))
        if tta is not None:
            self.model.preprocessing["tta"] = tta
        if backend == "onnx":
            from avemo.inference.runtime import OnnxModule, onnx_cache_path

            crop = int(self.model.preprocessing["crop"])
            self.model.model = OnnxModule(self.model.model, torch.zeros(2, 1, crop, crop),
                                          onnx_cache_path(self.model.bundle, "crops"))

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
                 backend: str = "onnx") -> None:
        from avemo.audio import LogMel, MelConfig

        self.bundle = load(bundle) if isinstance(bundle, str) else bundle
        self.name = self.bundle.name
        self.mel_config = MelConfig.from_dict(self.bundle.preprocessing.get("mel", {}))
        self.sample_rate = self.mel_config.sample_rate
        self.network: torch.nn.Module | object = torch.nn.Sequential(LogMel(self.mel_config), self.bundle.model).eval()
        if backend == "onnx":
            from avemo.inference.runtime import OnnxModule, onnx_cache_path

            self.network = OnnxModule(self.network, torch.zeros(2, 3 * self.sample_rate),
                                      onnx_cache_path(self.bundle, "wave"), dynamic_length=True)
        self.batch_size = batch_size

    @torch.inference_mode()
    def predict(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32)
        if len(windows) == 0:
            return np.zeros((0, len(EMOTIONS)), dtype=np.float32)
        logits = [self.network(torch.from_numpy(windows[i:i + self.batch_size])).numpy()
                  for i in range(0, len(windows), self.batch_size)]
        return project_probs(_softmax(np.concatenate(logits)), self.bundle.labels, EMOTIONS)


@dataclass
class WeightedFusion:
    """Log-linear fusion of calibrated per-modality probabilities over EMOTIONS.

    ``p ∝ Π_m p_m^(w_m / T_m)`` over the modalities present in a row; a row with one modality
    returns that modality's (tempered) probabilities, a row with none returns NaN.
    """

    weights: dict[str, float] = field(default_factory=lambda: {"face": 0.5, "voice": 0.5})
    temperatures: dict[str, float] = field(default_factory=lambda: {"face": 1.0, "voice": 1.0})
    floor: float = 1e-4
    name: str = "weighted-fusion"

    def fuse(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        first = next(iter(probs.values()))
        total = np.zeros(first.shape, dtype=np.float64)
        present = np.zeros(first.shape[0], dtype=bool)
        for modality, p in probs.items():
            ok = ~np.isnan(p).any(axis=1)
            w = self.weights.get(modality, 0.0) / self.temperatures.get(modality, 1.0)
            total[ok] += w * np.log(np.clip(p[ok], self.floor, 1.0))
            present |= ok
        out = np.full(first.shape, np.nan)
        out[present] = _softmax(total[present])
        return out.astype(np.float32)


def load_fusion(name: str = DEFAULT_MODELS["fusion"]) -> WeightedFusion:
    """The fusion bundle's weights and temperatures as a :class:`WeightedFusion` (equal weights when
    the bundle does not ship them)."""
    import json

    from avemo.models.registry import WEIGHTS_DIR

    spec_path = WEIGHTS_DIR / name / "bundle.json"
    if not spec_path.is_file():
        return WeightedFusion()
    spec = json.loads(spec_path.read_text())
    pre = spec.get("preprocessing", {})
    return WeightedFusion(weights=pre.get("weights", {"face": 0.5, "voice": 0.5}),
                          temperatures=pre.get("temperatures", {"face": 1.0, "voice": 1.0}), name=name)
