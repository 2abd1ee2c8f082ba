"""The face expression network and its shipped bundle (face.fer2013) on real FER-2013 faces and a real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import avemo
from avemo.inference.predictors import FacePredictor
from avemo.labels import BASIC7, to_canonical
from avemo.models.encoders.visual import tta_logits
from avemo.models.face_input import face_input, face_views
from avemo.models.registry import create_model

BUNDLE = "face.fer2013"


@pytest.fixture(scope="module")
def face_model() -> FacePredictor:
    """The shipped bundle as the analyzer runs it: its float ONNX network, flip views."""
    model = FacePredictor(BUNDLE, tta="flip")
    assert model.bundle.tta in ("none", "flip", "tencrop")
    return model


def _private_subset(data: Path, every: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A fixed, class-stratified subset of PrivateTest: every ``every``-th file of each class (about 300)."""
    import cv2

    xs, ys = [], []
    for folder in sorted((data / "fer2013" / "test").iterdir()):
        files = sorted(folder.glob("PrivateTest_*.jpg"))[::every]
        xs += [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        ys += [BASIC7.index(to_canonical("fer2013", folder.name))] * len(files)
    return np.stack(xs), np.array(ys)


def test_architecture_output_shape() -> None:
    net = create_model("face").eval()
    with torch.no_grad():
        assert net(torch.randn(3, 1, 44, 44)).shape == (3, 7)
        assert net(torch.randn(2, 1, 48, 48)).shape == (2, 7)
        assert net.features(torch.randn(2, 1, 44, 44)).shape == (2, 256)
    small = create_model("face", widths=(8, 16, 16, 32), num_classes=5)
    assert small(torch.randn(1, 1, 44, 44)).shape == (1, 5)
    with pytest.raises(ValueError, match="one more width"):
        create_model("face", widths=(8, 16), blocks=(1, 1, 1))


def test_preprocess_and_tta_views() -> None:
    crops = np.random.default_rng(0).integers(0, 256, (4, 96, 96), dtype=np.uint8)
    arr = face_input(crops, size=48, mean=0.5, std=0.25)
    assert arr.shape == (4, 1, 48, 48) and arr.dtype == np.float32
    assert face_input(crops[0], size=48, mean=0.5, std=0.25).shape == (1, 1, 48, 48)  # a single (H, W) crop
    x = torch.from_numpy(arr)
    net = create_model("face").eval()
    with torch.no_grad():
        # the numpy views (onnx path) and the torch views (training) are the same crops
        for mode, n in (("none", 1), ("flip", 2), ("tencrop", 10)):
            views = face_views(arr, crop=44, mode=mode)
            assert views.shape == (n, 4, 1, 44, 44)
            via_numpy = net(torch.from_numpy(views.reshape(n * 4, 1, 44, 44))).reshape(n, 4, -1).mean(0)
            np.testing.assert_allclose(via_numpy.numpy(), tta_logits(net, x, mode=mode, crop=44).numpy(), atol=1e-5)
        for mode in ("none", "flip", "tencrop"):
            assert tta_logits(net, x, mode=mode, crop=44).shape == (4, 7)
        # mirrored inputs give the same flip-averaged logits
        a = tta_logits(net, x, mode="flip", crop=44)
        b = tta_logits(net, torch.flip(x, dims=[3]), mode="flip", crop=44)
        assert torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match="tta mode"):
        tta_logits(net, x, mode="rotate")


def test_bundle_is_small_and_documented() -> None:
    bundle = avemo.load(BUNDLE)
    assert bundle.kind == "face" and bundle.architecture == "face" and tuple(bundle.labels) == BASIC7
    assert (bundle.input_size, bundle.crop) == (48, 44) and set(bundle.files) == {"weights", "onnx", "int8"}
    size = sum(f.stat().st_size for f in bundle.path.iterdir())
    assert size < 16 * 2**20
    card = bundle.card
    assert "PrivateTest" in card and "non-commercial" in card.lower()


def test_bundle_well_above_chance_on_private_test(face_model: FacePredictor, data: Path) -> None:
    x, y = _private_subset(data)
    assert 250 < len(y) < 350
    probs = face_model.probs(x)
    assert probs.shape == (len(y), 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    acc = float((probs.argmax(1) == y).mean())
    assert acc > 0.55, f"accuracy {acc:.3f} on {len(y)} PrivateTest faces (chance 0.14-0.25)"


def test_onnx_and_torch_backends_agree_on_real_faces(face_model: FacePredictor, data: Path) -> None:
    x, _ = _private_subset(data, every=60)
    torch_model = FacePredictor(BUNDLE, tta="flip", backend="torch")
    np.testing.assert_allclose(face_model.logits(x), torch_model.logits(x), atol=1e-3)
    assert face_model.predict(x[:1]).shape == (1, len(avemo.EMOTIONS))  # batch axis is dynamic


def test_predict_on_aligned_crop_from_real_clip(face_model: FacePredictor, clips: dict[str, Path]) -> None:
    from avemo.faces import scan_video

    frames = scan_video(clips["cremad_hap"], fps=4.0, size=48, grey=True)
    crops = [f.main_crop for f in frames if f.main_crop is not None]
    assert len(crops) >= len(frames) - 1 > 0
    assert crops[0].shape == (48, 48) and crops[0].dtype == np.uint8
    probs = face_model.probs(np.stack(crops))
    assert probs.shape == (len(crops), 7)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert np.all(probs >= 0)
    # also accepts a larger colour-less crop (resized to the bundle's 48)
    assert face_model.probs(np.zeros((1, 112, 112), dtype=np.uint8)).shape == (1, 7)
    assert face_model.predict(np.zeros((0, 48, 48), dtype=np.uint8)).shape == (0, 8)
