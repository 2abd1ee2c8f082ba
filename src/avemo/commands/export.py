"""``avemo export``: write a shipped bundle's network as ONNX (what the analyzer runs with onnxruntime)."""

from __future__ import annotations

import argparse

HELP = "export a model bundle to ONNX (face: aligned crops -> logits; voice: 16 kHz wave -> logits)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="*", help="bundle names or folders (default: the default face and voice)")
    p.add_argument("--out", default="onnx", help="output folder (default: onnx)")
    p.add_argument("--int8", action="store_true",
                   help="face bundles: also write a static-int8 network into the bundle folder, calibrated on "
                        "256 FER-2013 Training faces (needs AVEMO_DATA); the analyzer then runs it")


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from avemo.errors import ModelError
    from avemo.inference.predictors import DEFAULT_MODELS, FacePredictor, VoicePredictor
    from avemo.models.registry import load

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.bundles or [DEFAULT_MODELS["face"], DEFAULT_MODELS["voice"]]:
        bundle = load(name)
        if bundle.architecture == "face":
            onnx = FacePredictor(bundle).model.model.path
            if args.int8:
                print(f"{bundle.name} -> {write_int8(bundle, onnx)}")
        elif bundle.architecture == "voice":
            onnx = VoicePredictor(bundle).network.path
        else:
            raise ModelError(f"{name}: exporting architecture {bundle.architecture!r} is not supported "
                             "(face and voice bundles are)")
        target = out / f"{bundle.name}.onnx"
        shutil.copyfile(onnx, target)
        print(f"{bundle.name} -> {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


def write_int8(bundle, onnx) -> object:
    """Quantize the face network (calibrated on FER-2013 Training faces) into the bundle folder."""
    import json

    import numpy as np

    from avemo.datasets import load_fer_image, read_corpus
    from avemo.inference.runtime import INT8_FILE, INT8_INFO, bundle_key, quantize_int8
    from avemo.models.encoders.visual import DEFAULT_PREPROCESSING, preprocess

    pre = {**DEFAULT_PREPROCESSING, **bundle.preprocessing}
    train = [s for s in read_corpus("fer2013") if s.split == "train"]
    chosen = train[:: max(1, len(train) // 256)][:256]
    x = preprocess(np.stack([load_fer_image(s) for s in chosen]), pre).numpy()
    off = (x.shape[-1] - int(pre["crop"])) // 2
    x = x[:, :, off:off + int(pre["crop"]), off:off + int(pre["crop"])]
    out = quantize_int8(onnx, x, bundle.path / INT8_FILE)
    info = {"weights_key": bundle_key(bundle, "crops"), "calibration": f"{len(chosen)} FER-2013 Training faces, "
            "evenly spaced, centre crop", "scheme": "onnxruntime quantize_static, QDQ, int8 weights, uint8 activations",
            "command": f"avemo export {bundle.name} --int8", "scores": "BENCHMARKS.md, speed section (face views)"}
    (bundle.path / INT8_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return out
