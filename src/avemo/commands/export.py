"""``avemo export``: copy a bundle's ONNX network out (what the analyzer runs with onnxruntime), or
re-make a face bundle's int8 network."""

from __future__ import annotations

import argparse

HELP = "write a model bundle's ONNX network (face: aligned crops -> logits; voice: 16 kHz wave -> logits)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="*", help="bundle names or folders (default: the default face and voice)")
    p.add_argument("--out", default="onnx", help="output folder (default: onnx)")
    p.add_argument("--int8", action="store_true",
                   help="face bundles: also (re)write the static-int8 network in the bundle folder, calibrated on "
                        "256 FER-2013 Training faces (needs AVEMO_DATA); the analyzer then runs it")


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from avemo.errors import ModelError
    from avemo.inference.predictors import DEFAULT_MODELS
    from avemo.models.bundles import FaceBundle, load

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.bundles or [DEFAULT_MODELS["face"], DEFAULT_MODELS["voice"]]:
        bundle = load(name)
        if "onnx" not in bundle.files:
            problem = f"{bundle.name}: a {bundle.kind} bundle has no ONNX network"
            if args.bundles:
                raise ModelError(problem)
            print(f"{problem} (the default voice model runs numpy heads on the Whisper encoder, whose ONNX graph "
                  "is built in the cache on first use); skipped")
            continue
        if args.int8:
            if not isinstance(bundle, FaceBundle):
                raise ModelError(f"{bundle.name}: --int8 is for face bundles")
            bundle = write_int8(bundle)
            print(f"{bundle.name} -> {bundle.file('int8')}")
        target = out / f"{bundle.name}.onnx"
        shutil.copyfile(bundle.file("onnx"), target)
        print(f"{bundle.name} -> {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0


def write_int8(bundle):
    """Quantize the face network (calibrated on FER-2013 Training faces) into the bundle folder."""
    import numpy as np

    from avemo.datasets import load_fer_image, read_corpus
    from avemo.models.bundles import add_file
    from avemo.models.face_input import face_input, face_views
    from avemo.models.onnx import quantize_int8

    pre = bundle.preprocessing
    train = [s for s in read_corpus("fer2013") if s.split == "train"]
    chosen = train[:: max(1, len(train) // 256)][:256]
    x = face_input(np.stack([load_fer_image(s) for s in chosen]), size=pre.resize, mean=pre.mean, std=pre.std)
    quantize_int8(bundle.file("onnx"), face_views(x, crop=pre.crop, mode="none")[0], bundle.path / "model.int8.onnx")
    info = {"calibration": f"{len(chosen)} FER-2013 Training faces, evenly spaced, centre crop",
            "scheme": "onnxruntime quantize_static, QDQ, int8 weights, uint8 activations",
            "command": f"avemo export {bundle.name} --int8", "scores": "BENCHMARKS.md, speed section (face views)"}
    return add_file(bundle, "int8", "model.int8.onnx", {"int8": info})
