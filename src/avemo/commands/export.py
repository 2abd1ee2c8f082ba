"""``avemo export``: write a shipped bundle's network as ONNX (what the analyzer runs with onnxruntime)."""

from __future__ import annotations

import argparse

HELP = "export a model bundle to ONNX (face: aligned crops -> logits; voice: 16 kHz wave -> logits)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundles", nargs="*", help="bundle names or folders (default: the default face and voice)")
    p.add_argument("--out", default="onnx", help="output folder (default: onnx)")


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
        elif bundle.architecture == "voice":
            onnx = VoicePredictor(bundle).network.path
        else:
            raise ModelError(f"{name}: exporting architecture {bundle.architecture!r} is not supported "
                             "(face and voice bundles are)")
        target = out / f"{bundle.name}.onnx"
        shutil.copyfile(onnx, target)
        print(f"{bundle.name} -> {target} ({target.stat().st_size / 1e6:.1f} MB)")
    return 0
