"""Running a bundle's network with onnxruntime: exported once per bundle (keyed by its weights'
content) into the cache, then called like the torch module it replaces. On 2 CPU cores
onnxruntime runs the face and voice networks several times faster than eager torch (see
BENCHMARKS.md, speed section)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from avemo.config import cache_root
from avemo.models.registry import Bundle

log = logging.getLogger(__name__)
_EXPORT_LOCK = threading.Lock()  # torch.onnx.export keeps global state: one export at a time


def bundle_key(bundle: Bundle, extra: str = "") -> str:
    """A short hash of the bundle's weights and settings (and ``extra``)."""
    h = hashlib.sha256()
    if bundle.path is not None and (bundle.path / "model.safetensors").is_file():
        h.update((bundle.path / "model.safetensors").read_bytes())
    else:
        for name, tensor in sorted(bundle.model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
    h.update(json.dumps([bundle.architecture, bundle.kwargs, bundle.preprocessing, extra], sort_keys=True,
                        default=str).encode())
    return h.hexdigest()[:16]


class OnnxModule:
    """A torch module's forward run by onnxruntime: ``module(x: Tensor) -> Tensor``, batch (and, with
    ``dynamic_length``, the last axis) dynamic. ``path`` is written by the first use if absent (an
    existing ``path``, e.g. a shipped int8 network, needs no module)."""

    def __init__(self, module: torch.nn.Module | None, example: torch.Tensor | None, path: str | Path, *,
                 dynamic_length: bool = False, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        with _EXPORT_LOCK:
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{threading.get_ident()}.part")
                axes = {0: "batch", example.dim() - 1: "length"} if dynamic_length else {0: "batch"}
                torch.onnx.export(module.eval(), (example,), str(tmp), input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": axes, "y": {0: "batch"}}, opset_version=17, dynamo=False)
                tmp.replace(path)
                log.info("exported %s", path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"x": arr})[0])


def onnx_cache_path(bundle: Bundle, tag: str) -> Path:
    """Where the exported ONNX file of ``bundle`` (in form ``tag``) lives in the cache."""
    return cache_root() / "onnx" / f"{bundle.name}-{tag}-{bundle_key(bundle, tag)}.onnx"


INT8_FILE, INT8_INFO = "model.int8.onnx", "model.int8.json"


def quantize_int8(onnx_path: Path, calibration: np.ndarray, out: Path) -> Path:
    """Static int8 quantization (QDQ, per-tensor) of an exported network, calibrated on ``calibration``
    inputs (real, preprocessed examples)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = iter([{"x": np.ascontiguousarray(calibration[i:i + 32], dtype=np.float32)}
                    for i in range(0, len(calibration), 32)])

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    quantize_static(str(onnx_path), str(out), _Reader(), quant_format=QuantFormat.QDQ,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return out


def shipped_int8(bundle: Bundle) -> Path | None:
    """The bundle's int8 network, if it ships one made from exactly these weights (else None)."""
    if bundle.path is None or not (bundle.path / INT8_FILE).is_file() or not (bundle.path / INT8_INFO).is_file():
        return None
    info = json.loads((bundle.path / INT8_INFO).read_text())
    if info.get("weights_key") != bundle_key(bundle, "crops"):
        log.warning("%s: %s was made from other weights; using the float network", bundle.path, INT8_FILE)
        return None
    return bundle.path / INT8_FILE
