"""The house's contracts, walked over what is registered and shipped: every recipe loads with the recipe
loader, every shipped bundle loads, is checked, and predicts on a shared clip, bundles are frozen and refuse
bad files, and analysis runs without importing torch."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import avemo
from avemo.errors import ModelError, RecipeError
from avemo.labels import EMOTIONS
from avemo.models.bundles import FaceBundle, FusionBundle, TextBundle, VoiceBundle, list_bundles, load, save_bundle
from avemo.training.recipe import KINDS, load_recipe

ROOT = Path(__file__).parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_loads_with_the_recipe_loader(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem and recipe.kind in KINDS
    if recipe.kind in ("voice", "face", "system"):
        assert recipe.model.name and recipe.train.epochs > 0  # the Trainer's sections are typed and filled


def test_recipes_refuse_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    base = (ROOT / "recipes" / "voice_ravdess.yaml").read_text()
    cases = {"optim:": ("optim: {lr: 0.003, learning_rate: 1}\noptim_unused:", "unknown keys"),
             "train: {": ("trian: {", "unknown keys ['trian']"),
             "kind: voice": ("kind: painting", "kind must be one of")}
    for old, (new, message) in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(base.replace(old, new, 1))
        with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
            load_recipe(path)
        assert str(path) in str(err.value)
    with pytest.raises(RecipeError, match="optim.*learning_rate|learning_rate"):
        load_recipe(ROOT / "recipes" / "voice_ravdess.yaml", {"optim.learning_rate": 1})


def test_face_recipes_run_under_avemo_train() -> None:
    recipe = load_recipe(ROOT / "recipes" / "face_fer2013_restart.yaml")
    assert recipe.kind == "face" and recipe.protocol.name == "fer2013" and recipe.train.select == "best"
    assert recipe.optim.name == "sgd" and recipe.ship.bundle == "face.fer2013"


@pytest.mark.slow
def test_avemo_train_runs_a_face_recipe_end_to_end(data: Path, tmp_path: Path) -> None:
    """`avemo train recipes/face_fer2013.yaml` as a user types it, on a small real FER-2013 folder (the first
    faces of every class and split, linked), narrowed by --set: the trainer runs, selects on PublicTest,
    scores PrivateTest once and writes its results and a bundle that loads and predicts."""
    fer = tmp_path / "fer2013"
    for split, prefixes, n in (("train", ("Training",), 24), ("test", ("PublicTest", "PrivateTest"), 6)):
        for cls in sorted(p.name for p in (data / "fer2013" / split).iterdir()):
            (fer / split / cls).mkdir(parents=True)
            for prefix in prefixes:
                for img in sorted((data / "fer2013" / split / cls).glob(f"{prefix}_*.jpg"))[:n]:
                    (fer / split / cls / img.name).symlink_to(img)
    overrides = [f"data.root={fer}", "train.epochs=2", "train.time_budget_min=null", "train.val_every=1",
                 "train.bf16=false", "eval.tta=[none, flip]", "model.kwargs.widths=[8, 16, 16, 16]",
                 "ship.write=true"]
    cmd = [sys.executable, "-m", "avemo", "train", "recipes/face_fer2013.yaml", "--run-dir", str(tmp_path / "run"),
           "--bundle-dir", str(tmp_path / "bundles"), "--quiet", *(a for o in overrides for a in ("--set", o))]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["epochs_run"] == 2 and results["tta"] in ("none", "flip")
    assert 0.0 <= results["private_test"]["accuracy"] <= 1.0
    scored = subprocess.run([sys.executable, "-m", "avemo", "evaluate", "recipes/face_fer2013.yaml", "--run-dir",
                             str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert f"{results['private_test']['accuracy']:.3f}" in scored.stdout, scored.stdout
    bundle = load(next((tmp_path / "bundles").iterdir()))
    assert isinstance(bundle, FaceBundle) and bundle.labels == tuple(results["labels"])
    from avemo.inference.predictors import FacePredictor

    crops = np.full((3, bundle.input_size, bundle.input_size), 128, dtype=np.uint8)
    probs = FacePredictor(bundle).probs(crops)
    assert probs.shape == (3, len(bundle.labels)) and np.allclose(probs.sum(1), 1.0, atol=1e-4)


# ---- shipped bundles --------------------------------------------------------------------------------------
SHIPPED = list_bundles()


@pytest.fixture(scope="module")
def clip_inputs(clips: dict[str, Path]) -> dict[str, np.ndarray]:
    """Aligned face crops and 16 kHz speech from the shared CREMA-D angry clip."""
    from avemo.faces import scan_video
    from avemo.media import read_audio

    frames = scan_video(clips["cremad_ang"], fps=5.0, size=48, grey=True)
    crops = np.stack([f.main_crop for f in frames if f.main_crop is not None])
    return {"crops": crops, "wave": read_audio(clips["cremad_ang"], 16000)}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_bundle_loads_and_predicts_on_a_shared_clip(name: str, clip_inputs) -> None:
    from avemo.audio import Window, frame_windows
    from avemo.inference.predictors import FacePredictor, Fusion, VoicePredictor

    bundle = load(name)
    assert bundle.name == name and bundle.card and "non-commercial" in bundle.card.lower()
    for role in bundle.files:
        assert bundle.file(role).is_file()  # present, hash checked
    if isinstance(bundle, FaceBundle):
        probs = FacePredictor(bundle).predict(clip_inputs["crops"])
        torch_probs = FacePredictor(bundle, backend="torch").predict(clip_inputs["crops"])
        np.testing.assert_allclose(probs, torch_probs, atol=2e-3)  # the shipped ONNX equals the torch module
    elif isinstance(bundle, VoiceBundle):
        wave = clip_inputs["wave"]
        windows = frame_windows(wave, bundle.sample_rate, [Window(0.0, wave.size / 16000)], window_s=bundle.window_s)
        probs = VoicePredictor(bundle).predict(windows)
        # an int8 encoder (voice.multi6) is near the float torch module, which its float runtime equals within 2e-3
        # (tests/test_whisper_voice.py states both)
        tol = 0.1 if bundle.preprocessing.front_end.get("int8") else 2e-3
        np.testing.assert_allclose(probs, VoicePredictor(bundle, backend="torch").predict(windows), atol=tol)
    elif isinstance(bundle, FusionBundle):
        face = FacePredictor().predict(clip_inputs["crops"][:1])
        probs = Fusion(bundle).fuse({"face": face, "voice": np.full((1, 8), 1 / 8, np.float32)})
    else:
        assert isinstance(bundle, TextBundle)
        logits = bundle.get_model()(["i am so happy today"])  # a text runtime gives logits, as its torch module
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        assert bundle.labels[int(probs.argmax())] == "happy"
    assert probs.shape[-1] == len(EMOTIONS if not isinstance(bundle, TextBundle) else bundle.labels)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-4)


def test_bundles_are_frozen_with_properties() -> None:
    face, voice = load("face.fer2013"), load("voice.ravdess8")
    with pytest.raises(dataclasses.FrozenInstanceError):
        face.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        face.kwargs["widths"] = [1]  # type: ignore[index]
    assert (face.crop, face.input_size, voice.sample_rate, voice.window_s) == (44, 48, 16000, 3.0)
    assert face.labels == avemo.labels.BASIC7 and voice.labels == EMOTIONS
    with pytest.raises(ModelError, match="backend"):
        face.get_model(backend="tensorflow")
    with pytest.raises(ModelError, match="voice bundle, not a face"):
        from avemo.inference.predictors import FacePredictor

        FacePredictor("voice.ravdess8")


def _copy(name: str, tmp_path: Path) -> Path:
    folder = tmp_path / name
    shutil.copytree(load(name).path, folder)
    return folder


def test_bundle_json_with_unknown_or_missing_keys_is_refused(tmp_path: Path) -> None:
    folder = _copy("fusion.ravdess", tmp_path)
    spec = json.loads((folder / "bundle.json").read_text())
    (folder / "bundle.json").write_text(json.dumps({**spec, "extra": 1}))
    with pytest.raises(ModelError, match=r"bundle fusion.ravdess .*unknown keys \['extra'\]"):
        load(folder)
    spec["preprocessing"].pop("rule")
    (folder / "bundle.json").write_text(json.dumps(spec))
    with pytest.raises(ModelError, match=r"missing \['rule'\]"):
        load(folder)


def test_a_damaged_weights_file_is_refused_by_its_hash(tmp_path: Path) -> None:
    folder = _copy("voice.ravdess8", tmp_path)
    bundle = load(folder)
    data = bytearray((folder / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its SHA-256"):
        bundle.get_model()
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors is missing"):
        load(folder)


def test_create_model_pretrained_builds_the_bundles_torch_module() -> None:
    import torch

    model = avemo.models.create_model("voice.ravdess8", pretrained=True)
    assert isinstance(model, torch.nn.Module) and not model.training
    with pytest.raises(ModelError, match="pass pretrained=True"):
        avemo.models.create_model("voice.ravdess8")


def test_a_text_bundle_runs_without_torch_as_its_torch_module_does(data: Path, tmp_path: Path) -> None:
    import torch

    from avemo.models.registry import create_model

    lines = (data / "text-emotion-carer" / "train.txt").read_text().splitlines()[:1500]
    texts, raw = zip(*(line.rsplit(";", 1) for line in lines), strict=True)
    keep = [i for i, lab in enumerate(raw) if lab != "love"]
    names = {"sadness": "sad", "joy": "happy", "anger": "angry", "fear": "fearful", "surprise": "surprised"}
    labels = ("happy", "sad", "angry", "fearful", "surprised")
    model = create_model("text", labels=labels, n_features=2**12, ngram_max=2)
    model.fit([texts[i] for i in keep], [names[raw[i]] for i in keep], C=4.0)
    bundle = save_bundle(tmp_path / "text.carer-test", kind="text", architecture="text", labels=labels,
                         kwargs={"labels": list(labels), "n_features": 2**12, "ngram_max": 2}, model=model,
                         preprocessing={"input": "sentences", "embedder": "tfidf", "n_features": 2**12,
                                        "ngram_max": 2, "languages": ["en"]})
    sentences = ["i feel so happy and grateful today", "this makes me furious", "i am scared of the dark"]
    logits = bundle.get_model()(sentences)
    with torch.no_grad():
        np.testing.assert_allclose(logits, bundle.get_model("torch")(sentences).numpy(), atol=1e-4)
    assert logits.shape == (3, 5)


# ---- analysis without torch ----------------------------------------------------------------------------
def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)


def test_analysis_imports_no_torch(clips: dict[str, Path], tmp_path: Path) -> None:
    clip = clips["cremad_hap"]
    proc = _run(f"""
        import sys
        import avemo
        timeline = avemo.analyze({str(clip)!r})
        assert len(timeline) >= 1 and timeline["label"].iloc[0] is not None
        from avemo.cli import main
        assert main(["analyze", {str(clip)!r}, "--out", {str(tmp_path / "out")!r}]) == 0
        assert main(["live", "--source", {str(clip)!r}, "--plain", "--speed", "4", "--duration", "1"]) == 0
        leaked = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        print("TORCH", leaked)
        """)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "TORCH []" in proc.stdout
    assert (tmp_path / "out" / clip.stem / "timeline.csv").is_file()


def test_an_install_without_torch_analyses_and_says_what_training_needs(clips: dict[str, Path], tmp_path: Path
                                                                         ) -> None:
    """torch is the ``train`` extra, not a dependency: with it missing (an import of it fails, as in an install
    without it) the analysing commands work, and a command that trains says which extra it needs."""
    fake = tmp_path / "no-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ModuleNotFoundError("No module named \'torch\'", name="torch")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(ROOT / "src")])}

    def avemo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "avemo", *args], capture_output=True, text=True, timeout=600,
                              cwd=ROOT, env=env)

    clip, out = clips["cremad_hap"], tmp_path / "out"
    done = avemo("analyze", str(clip), str(clips["ravdess_wav"]), "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / clip.stem / "timeline.png").is_file() and (out / clips["ravdess_wav"].stem / "summary.json").is_file()
    assert avemo("batch", str(clip), "--out", str(tmp_path / "batch")).returncode == 0
    assert avemo("inspect", str(clip)).returncode == 0
    exported = avemo("export", "--out", str(tmp_path / "onnx"))  # copies the shipped ONNX networks: no torch
    assert exported.returncode == 0 and (tmp_path / "onnx" / "face.fervideo.onnx").is_file(), exported.stderr
    for args in (("train", str(ROOT / "recipes" / "face_fer2013.yaml")), ("evaluate", "face_fer2013")):
        refused = avemo(*args)
        assert refused.returncode == 2 and "avemo[train]" in refused.stderr, (args, refused.stderr[-2000:])
        assert "Traceback" not in refused.stderr
