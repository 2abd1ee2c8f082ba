"""ONNX for bundles: the network a bundle ships (``model.onnx``), run with onnxruntime without torch, and
the exporter that writes it when the bundle is made (that half imports torch, lazily).

:class:`OnnxNetwork` is what analysis runs: ``network(x: ndarray) -> ndarray``, batch (and, for
waveforms, length) dynamic. :func:`export_network` traces a torch module once; with ``half_weights``
the float32 initializers are stored as float16 and cast back to float32 in the graph (onnxruntime
folds the casts when the session loads), which halves the file and is exact for weights that were
stored in float16 to begin with (``face.fer2013``). :func:`quantize_int8` makes a static-int8 copy.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avemo.errors import ModelError

log = logging.getLogger(__name__)
_EXPORT_LOCK = threading.Lock()  # torch.onnx.export keeps global state: one export at a time


class OnnxNetwork:
    """An ONNX file run by onnxruntime on the CPU: ``network(x) -> first output`` (float32 in and out)."""

    def __init__(self, path: str | Path, *, threads: int | None = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors for broken files
            raise ModelError(f"{self.path}: not a usable ONNX network ({exc})") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {self.input_name: arr})[0]


def export_network(module: Any, example: Any, path: str | Path, *, dynamic_length: bool = False,
                   half_weights: bool = False, opset: int = 17) -> Path:
    """Write ``module`` (a torch module, eval mode) as ONNX with input ``x`` and output ``y``.

    The batch axis is dynamic, and with ``dynamic_length`` the input's last axis too. Batch norm is
    kept as its own node (onnxruntime fuses it when the session loads), so the stored weights are the
    module's own and ``half_weights`` loses nothing for float16-stored weights.
    """
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", example.dim() - 1: "length"} if dynamic_length else {0: "batch"}
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
    with _EXPORT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracing chatter
        torch.onnx.export(module.eval(), (example,), str(tmp), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": axes, "y": {0: "batch"}}, opset_version=opset, dynamo=False,
                          do_constant_folding=False)
    if half_weights:
        _store_half(tmp)
    tmp.replace(path)
    log.info("exported %s", path)
    return path


def _store_half(path: Path) -> None:
    """Float32 initializers stored as float16, each followed by a Cast back to float32 (in place)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if init.data_type != TensorProto.FLOAT or arr.size < 16:
            keep.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), f"{init.name}__fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def quantize_int8(onnx_path: str | Path, calibration: np.ndarray, out: str | Path) -> Path:
    """Static int8 quantization (QDQ, per-tensor) of an exported float network, calibrated on
    ``calibration`` inputs (real, preprocessed examples)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    batches = iter([{"x": np.ascontiguousarray(calibration[i:i + 32], dtype=np.float32)}
                    for i in range(0, len(calibration), 32)])

    class _Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(batches, None)

    quantize_static(str(onnx_path), str(out), _Reader(), quant_format=QuantFormat.QDQ,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    return Path(out)


def max_difference(a: Sequence[np.ndarray] | np.ndarray, b: Sequence[np.ndarray] | np.ndarray) -> float:
    """Largest absolute difference between two arrays of the same shape."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ModelError(f"outputs differ in shape: {a.shape} against {b.shape}")
    return float(np.abs(a - b).max()) if a.size else 0.0
