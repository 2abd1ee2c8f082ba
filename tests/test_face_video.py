"""The video face model (issue #11): expression features, the blendshape member, fallback, pooling, on real clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avemo.errors import ModelError
from avemo.faces import BLENDSHAPE_NAMES
from avemo.faces.expression_features import (
    N_FEATURES,
    expression_features,
    face_features,
    feature_names,
    mirror_features,
)
from avemo.faces.expression_model import (
    POOLING_RULES,
    BlendshapeClassifier,
    combine_members,
    pool_frames,
)
from avemo.inference.predictors import FacePredictor
from avemo.labels import BASIC7
from avemo.models.bundles import load


def _first_frame(path: Path) -> np.ndarray:
    from avemo.media import iter_frames

    for fr in iter_frames(path, 5.0, max_side=640):
        return fr.image
    raise AssertionError(f"{path}: no frame")


@pytest.fixture(scope="module")
def frame(clips: dict[str, Path]) -> np.ndarray:
    return _first_frame(clips["cremad_hap"])


@pytest.fixture(scope="module")
def video_model() -> FacePredictor:
    """The shipped video face bundle as the analyzer runs it (int8 crop network + blendshape member)."""
    model = FacePredictor("face.fervideo", int8=True)
    assert model.blendshapes is not None and model.int8
    return model


def test_blendshape_inputs_follow_mediapipe_names(frame: np.ndarray) -> None:
    """MediaPipe's own category names, index by index, are the classifier's first 52 inputs."""
    from avemo.faces.landmarker import _import_mediapipe, landmarker_model_path

    mp, base, vision = _import_mediapipe()
    opts = vision.FaceLandmarkerOptions(base_options=base(model_asset_path=str(landmarker_model_path())),
                                        running_mode=vision.RunningMode.IMAGE, output_face_blendshapes=True)
    with vision.FaceLandmarker.create_from_options(opts) as task:
        res = task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame)))
    assert res.face_blendshapes, "no face found in the clip's first frame"
    names = [c.category_name for c in sorted(res.face_blendshapes[0], key=lambda c: c.index)]
    assert tuple(names) == BLENDSHAPE_NAMES
    assert feature_names()[:52] == tuple(names)
    clf = BlendshapeClassifier.load(load("face.fervideo").file("blendshapes"))  # the shipped member
    assert clf.feature_names[:52] == tuple(names)
    assert clf.labels == BASIC7


def test_geometry_ignores_position_size_and_roll(frame: np.ndarray) -> None:
    from avemo.faces import detect_faces

    face = detect_faces(frame)[0]
    f0 = face_features(face)
    assert f0 is not None and f0.shape == (N_FEATURES,)
    a = np.deg2rad(20.0)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lm = face.landmarks.copy()
    lm[:, :2] = (lm[:, :2] @ rot.T) * 1.7 + np.array([31.0, -12.0])
    f1 = expression_features(face.blendshapes, np.asarray(face.pose), lm)
    np.testing.assert_allclose(f1[55:], f0[55:], atol=1e-4)
    np.testing.assert_allclose(mirror_features(mirror_features(f0)), f0)
    m = mirror_features(f0)
    names = feature_names()
    assert m[names.index("mouthSmileLeft")] == f0[names.index("mouthSmileRight")]
    assert m[names.index("lm33_x")] == pytest.approx(-f0[names.index("lm263_x")])


def test_classifier_round_trip_and_checks(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    layers = ((rng.normal(size=(N_FEATURES, 16)).astype(np.float32), np.zeros(16, np.float32)),
              (rng.normal(size=(16, 7)).astype(np.float32), np.zeros(7, np.float32)))
    clf = BlendshapeClassifier(BASIC7, feature_names(), np.zeros(N_FEATURES, np.float32),
                               np.ones(N_FEATURES, np.float32), layers)
    x = rng.normal(size=(5, N_FEATURES)).astype(np.float32)
    x[0, 60] = np.nan  # a missing value counts as the training mean
    back = BlendshapeClassifier.load(clf.save(tmp_path / "c.npz"))
    np.testing.assert_allclose(back.predict_proba(x), clf.predict_proba(x), rtol=1e-6)
    assert np.allclose(back.predict_proba(x).sum(1), 1.0)
    with pytest.raises(ModelError):
        clf.predict_proba(x[:, :50])
    np.savez(tmp_path / "bad.npz", labels=np.array(BASIC7), feature_names=np.array(feature_names()[::-1]),
             mean=clf.mean, std=clf.std, W0=layers[0][0], b0=layers[0][1])
    with pytest.raises(ModelError, match="same order"):
        BlendshapeClassifier.load(tmp_path / "bad.npz")


def test_combine_members_falls_back_per_face() -> None:
    crop = np.array([[0.7, 0.1, 0.05, 0.05, 0.05, 0.03, 0.02], [0.1, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05]])
    blend = np.array([[0.1, 0.7, 0.05, 0.05, 0.05, 0.03, 0.02], [np.nan] * 7])
    p, used = combine_members(crop, blend, {"crop": 1.0, "blendshapes": 1.0})
    assert used.tolist() == [True, False]
    np.testing.assert_allclose(p[1], crop[1], rtol=1e-5)
    assert not np.allclose(p[0], crop[0])
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


def test_pool_frames_rules() -> None:
    p = np.array([[0.6, 0.4], [0.2, 0.8], [np.nan, np.nan]])
    np.testing.assert_allclose(pool_frames(p, "mean"), [0.4, 0.6], rtol=1e-6)
    g = np.sqrt(np.array([0.12, 0.32]))
    np.testing.assert_allclose(pool_frames(p, "logmean"), g / g.sum(), rtol=1e-5)
    for rule in POOLING_RULES:
        assert pool_frames(p, rule).sum() == pytest.approx(1.0)
        assert np.isnan(pool_frames(p[2:], rule)).all()
    with pytest.raises(ValueError):
        pool_frames(p, "max")


def test_face_without_landmarks_uses_the_crop_member_alone(video_model: FacePredictor, frame: np.ndarray) -> None:
    from avemo.faces import HaarFaceDetector, align_face, detect_faces

    haar = HaarFaceDetector().detect(frame)
    mp_face = detect_faces(frame)[0]
    assert haar and haar[0].landmarks is None and face_features(haar[0]) is None
    crops = np.stack([align_face(frame, haar[0], 48, grey=True), align_face(frame, mp_face, 48, grey=True)])
    probs, used = video_model.members(crops, video_model.features([haar[0], mp_face]))
    assert used.tolist() == [False, True]
    alone, used_alone = video_model.members(crops[:1])  # no features given: the crop member alone
    assert not used_alone.any()
    np.testing.assert_allclose(probs[0], alone[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("clip", ["cremad_ang", "cremad_sad", "ravdess_mp4"])
def test_video_face_model_on_shared_clips(video_model: FacePredictor, clips: dict[str, Path], clip: str) -> None:
    from avemo.faces import scan_video

    frames = [f for f in scan_video(clips[clip], fps=4.0, size=48, grey=True, landmark_every=2) if f.main]
    assert len(frames) >= 5
    crops = np.stack([f.main_crop for f in frames])
    probs, used = video_model.members(crops, video_model.features([f.main for f in frames]))
    assert probs.shape == (len(frames), len(BASIC7)) and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert used.all()  # MediaPipe (or flow-carried) faces have features
    window = video_model.pool(probs)
    assert window.shape == (len(BASIC7),) and window.sum() == pytest.approx(1.0, rel=1e-5)


def test_camera_degradations_keep_shape_and_are_seeded() -> None:
    from avemo.training.fer_faces import VARIANTS, apply_variant
    from avemo.training.fer_video import DEGRADATIONS, degrade_face

    face = (np.arange(48 * 48) % 251).astype(np.uint8).reshape(48, 48)
    for kind in DEGRADATIONS:
        a = degrade_face(face, kind, np.random.default_rng(1))
        b = degrade_face(face, kind, np.random.default_rng(1))
        assert a.shape == face.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    for variant in VARIANTS:
        frames, angles = apply_variant(np.stack([face, face[::-1]]), variant, seed=3)
        assert len(frames) == 2 and frames[0].shape == (256, 256) and frames[0].dtype == np.uint8
        assert (np.abs(angles) > 0).all() == (variant == "rotate")


def test_mouth_feature_mask_is_the_speech_moved_part() -> None:
    from avemo.faces.expression_features import mouth_feature_mask

    names = feature_names()
    mask = mouth_feature_mask()
    on = {n for n, m in zip(names, mask, strict=True) if m}
    assert {"jawOpen", "mouthSmileLeft", "mouthFunnel", "lm13_y", "lm152_x"} <= on
    assert not {"browInnerUp", "eyeWideLeft", "noseSneerLeft", "pose_yaw", "lm105_y"} & on
