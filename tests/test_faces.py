"""avemo.faces on real clips: MediaPipe landmarks, tracking, alignment, Haar fallback, key frames."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from avemo.errors import AvemoError
from avemo.faces import (
    BLENDSHAPE_NAMES,
    Face,
    FaceLandmarker,
    FaceScanner,
    FaceTracker,
    HaarFaceDetector,
    align_face,
    detect_faces,
    landmarker_model_path,
    select_key_frames,
)
from avemo.faces.landmarker import MODEL_ENV
from avemo.media import iter_frames

VIDEO_CLIPS = ["ravdess_mp4", "cremad_ang", "cremad_hap", "cremad_sad"]


def _decode(path: Path, fps: float = 5.0) -> list[tuple[float, np.ndarray]]:
    """(time, RGB frame) at ``fps``, full size."""
    return [(f.time, f.image) for f in iter_frames(path, fps)]


@pytest.fixture(scope="module")
def frames(clips: dict[str, Path]) -> dict[str, list[tuple[float, np.ndarray]]]:
    return {name: _decode(clips[name]) for name in VIDEO_CLIPS}


@pytest.fixture(scope="module")
def image_landmarker():
    with FaceLandmarker(mode="image", max_faces=2) as lm:
        yield lm


@pytest.fixture(scope="module")
def video_scans(frames):
    """One video-mode scanner, reset per clip: {clip: [FrameFaces]} with 48x48 grey crops."""
    with FaceScanner(mode="video", max_faces=1, size=48, grey=True, keep_history=True) as sc:
        out = {}
        for name, fr in frames.items():
            sc.reset()
            out[name] = (list(sc.iter_frames(fr)), dict(sc.tracker.tracks))
        yield out


def test_model_path_and_missing_model(monkeypatch, tmp_path):
    assert landmarker_model_path().name == "face_landmarker.task"
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "nope.task"))
    with pytest.raises(AvemoError, match="does not exist"):
        landmarker_model_path()


@pytest.mark.parametrize("clip", VIDEO_CLIPS)
def test_faces_found_in_most_frames(video_scans, clip):
    scans, tracks = video_scans[clip]
    assert len(scans) >= 8
    with_face = [s for s in scans if s.faces]
    assert len(with_face) >= 0.8 * len(scans)
    for s in with_face:
        f = s.faces[0]
        assert f.source == "mediapipe"
        assert f.landmarks.shape == (478, 3) and f.landmarks.dtype == np.float32
        h, w = s.size
        inside = (f.landmarks[:, 0] >= -5) & (f.landmarks[:, 0] <= w + 5) & (f.landmarks[:, 1] >= -5)
        assert inside.mean() > 0.95
        x0, y0, x1, y1 = f.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert f.blendshapes.shape == (52,) and f.blendshapes.dtype == np.float32
        assert np.all((f.blendshapes >= 0) & (f.blendshapes <= 1))
        assert 0.1 < float(f.blendshapes.sum()) < 20.0
        assert all(math.isfinite(v) and abs(v) < 90 for v in f.pose)
        assert s.crops[0].shape == (48, 48) and s.crops[0].dtype == np.uint8
    # a single speaker: one track id through the whole clip
    ids = {s.faces[0].track_id for s in with_face}
    assert ids == {0}
    assert len(tracks) == 1 and tracks[0].n_frames == len(with_face)
    assert all(s.main_track_id == 0 and s.main is s.faces[0] for s in with_face)
    # the times increase
    times = [s.time for s in scans]
    assert times == sorted(times)


def test_blendshape_names_match_model(frames, image_landmarker):
    # MediaPipe's own category names, in output order
    img = frames["cremad_hap"][5][1]
    import mediapipe as mp

    res = image_landmarker._task.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=img))
    names = tuple(c.category_name for c in res.face_blendshapes[0])
    assert names == BLENDSHAPE_NAMES and len(BLENDSHAPE_NAMES) == 52
    face = image_landmarker.detect(img)[0]
    d = face.blendshape_dict()
    assert d["mouthSmileLeft"] > 0.2 and d["mouthSmileRight"] > 0.2  # the happy take smiles


def test_pose_follows_image_rotation_and_mirroring(frames, image_landmarker):
    img = frames["cremad_ang"][3][1]
    h, w = img.shape[:2]
    yaw, pitch, roll = image_landmarker.detect(img)[0].pose
    rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h))
    r_yaw, r_pitch, r_roll = image_landmarker.detect(rot)[0].pose
    assert r_roll - roll == pytest.approx(20, abs=4)  # counter-clockwise is positive
    m_yaw, _, m_roll = image_landmarker.detect(np.ascontiguousarray(img[:, ::-1]))[0].pose
    assert m_yaw == pytest.approx(-yaw, abs=3) and m_roll == pytest.approx(-roll, abs=3)


def test_downscaled_detection_maps_back_to_full_size(frames, image_landmarker):
    img = frames["ravdess_mp4"][4][1]  # 720 x 720
    full = image_landmarker.detect(img, max_side=None)[0]
    small = image_landmarker.detect(img, max_side=240)[0]
    # same face, same pixel frame: eye centres agree to a few pixels of the 720 frame
    for a, b in zip(full.eye_centres(), small.eye_centres(), strict=True):
        assert np.linalg.norm(a - b) < 12
    assert small.box[2] > 360  # not left in the 240-pixel frame


def test_align_face_sizes_and_framing(frames, image_landmarker):
    img = frames["ravdess_mp4"][4][1]
    face = image_landmarker.detect(img)[0]
    grey = align_face(img, face, 48, grey=True)
    colour = align_face(img, face, 112)
    assert grey.shape == (48, 48) and grey.dtype == np.uint8
    assert colour.shape == (112, 112, 3) and colour.dtype == np.uint8
    # landmarks also work directly, and the eyes land where FER-2013 has them
    again = align_face(img, face.landmarks, 112)
    assert np.array_equal(again, colour)
    from avemo.faces.align import alignment_matrix, eye_centres_from_landmarks

    right, left = eye_centres_from_landmarks(face.landmarks)
    m = alignment_matrix(right, left, 48)
    r2, l2 = m[:, :2] @ right + m[:, 2], m[:, :2] @ left + m[:, 2]
    assert r2 == pytest.approx([48 * 0.32, 48 * 0.40], abs=0.5)
    assert l2 == pytest.approx([48 * 0.68, 48 * 0.40], abs=0.5)
    # a tilted head comes out level: rotate the frame, align, compare with the upright crop
    h, w = img.shape[:2]
    rot = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0), (w, h))
    rot_crop = align_face(rot, image_landmarker.detect(rot)[0], 48, grey=True)
    assert np.abs(rot_crop.astype(int) - grey.astype(int)).mean() < 20
    # margin zooms out
    assert not np.array_equal(align_face(img, face, 48, grey=True, margin=0.3), grey)


def test_haar_fallback_finds_the_ravdess_face(frames, image_landmarker):
    img = frames["ravdess_mp4"][4][1]
    haar = HaarFaceDetector().detect(img)
    assert len(haar) >= 1
    f = haar[0]
    assert f.landmarks is None and f.source == "haar" and 0 < f.score <= 1
    # it overlaps the MediaPipe face
    mp_face = image_landmarker.detect(img)[0]
    from avemo.faces import box_iou

    assert box_iou(f.box, mp_face.box) > 0.4
    crop = align_face(img, f, 48, grey=True)
    assert crop.shape == (48, 48)
    # eye-aligned and box-aligned crops of the same face look alike
    assert np.abs(crop.astype(int) - align_face(img, mp_face, 48, grey=True).astype(int)).mean() < 30


class Blind:
    """A landmarker that never sees anything."""

    mode = "image"

    def detect(self, *a, **k):
        return []

    def reset(self):
        pass

    def close(self):
        pass


def test_scanner_falls_back_to_haar_when_mediapipe_is_blind(frames):
    img = frames["ravdess_mp4"][4][1]
    with FaceScanner(mode="image", min_confidence=0.5, size=48, grey=True, track=False) as sc:
        sc.landmarker.close()
        sc.landmarker = Blind()  # type: ignore[assignment]
        ff = sc.process(img, time=0.0)
        assert [f.source for f in ff.faces] == ["haar"] and ff.crops[0].shape == (48, 48)
        sc.fallback = False
        assert sc.process(img, time=0.2).faces == []

    # video mode: after a Haar miss, Haar rests for fallback_every - 1 frames
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    with FaceScanner(mode="video", size=None, fallback_every=5) as sc:
        sc.landmarker.close()
        sc.landmarker = Blind()  # type: ignore[assignment]
        sc.landmarker.mode = "video"
        calls = []
        real = sc.haar.detect
        sc.haar.detect = lambda im: calls.append(1) or real(im)  # type: ignore[method-assign]
        for i in range(12):
            sc.process(noise, time=i / 5)
        assert len(calls) == 3  # frames 0, 5 and 10


def test_no_face_is_not_an_error(image_landmarker):
    rng = np.random.default_rng(0)
    blank = np.zeros((360, 480, 3), np.uint8)
    noise = rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)
    for img in (blank, noise, np.full((64, 64, 3), 200, np.uint8)):
        assert image_landmarker.detect(img) == []
        assert HaarFaceDetector().detect(img) == []
    assert detect_faces(noise) == []
    with FaceScanner(mode="video", size=112) as sc:
        ff = sc.process(noise, time=0.0)
        assert ff.faces == [] and ff.crops == [] and ff.main is None


def test_detect_faces_on_an_image(frames):
    faces = detect_faces(frames["cremad_sad"][2][1])
    assert len(faces) == 1 and faces[0].landmarks.shape == (478, 3)


def test_a_tight_face_crop_is_found_framed_and_mapped_back_to_the_photo(data):
    from avemo.faces.scan import framed
    from avemo.media import read_image

    photo = read_image(data / "fer2013" / "test" / "angry" / "PrivateTest_10131363.jpg")  # 48x48, face edge to edge
    with FaceScanner(mode="image", size=48, grey=True, track=False, reframe=False) as sc:
        plain = sc.detect(photo)  # [] here: no context around the face, both detectors miss it
    big, factor, border = framed(photo)
    assert big.shape[:2] == (256, 256) and border == 64 and factor == pytest.approx(128 / 48)
    wide = framed(np.zeros((1500, 3000, 3), np.uint8))  # a large photo is shrunk before its border goes on
    assert wide[0].shape[:2] == (320 + 640, 640 + 640) and wide[1:] == (pytest.approx(640 / 3000), 320)
    with FaceScanner(mode="image", size=48, grey=True, track=False) as sc:
        ff = sc.process(photo, time=0.0, index=0)
        direct = sc._detect(big, None)
    assert len(direct) == 1 and direct[0].source == "mediapipe"  # framed, MediaPipe finds the whole face
    mapped = direct[0].scaled(1.0 / factor, (-border / factor, -border / factor))
    x0, y0, x1, y1 = mapped.box
    assert -8 < x0 < x1 < 56 and -8 < y0 < y1 < 56 and (x1 - x0) > 30  # the photo's face, in its own pixels
    np.testing.assert_allclose(mapped.landmarks[:, :2] * factor + border, direct[0].landmarks[:, :2], atol=1e-2)
    assert len(ff.faces) == 1 and ff.crops[0].shape == (48, 48) and ff.crops[0].std() > 10
    if not plain:  # the retry is what found it: the scanner's face is the framed one mapped back
        np.testing.assert_allclose(np.asarray(ff.main.box), np.asarray(mapped.box), atol=1e-3)
        assert ff.main.landmarks.shape == (478, 3)


def test_tracker_ids_gaps_and_main_face():
    tr = FaceTracker(max_gap=3)
    big = (100.0, 100.0, 200.0, 220.0)
    small = (300.0, 50.0, 340.0, 100.0)

    def faces(*boxes):
        return [Face(box=b) for b in boxes]

    assert [f.track_id for f in tr.update(faces(big, small), 0)] == [0, 1]
    # order swapped and moved a little: ids follow the faces
    moved = (105.0, 102.0, 205.0, 222.0)
    assert [f.track_id for f in tr.update(faces(small, moved), 1)] == [1, 0]
    # a short gap (2 frames missing) keeps the id; a fast move is caught by centre distance
    tr.update([], 2)
    tr.update([], 3)
    jumped = (150.0, 110.0, 250.0, 230.0)  # IoU with the last box < 0.3
    assert tr.update(faces(jumped), 4)[0].track_id == 0
    # a long gap starts a new identity
    assert tr.update(faces(small), 9)[0].track_id == 2
    assert tr.main_track_id == 0 and tr.tracks[0].n_frames == 3
    assert set(tr.tracks) == {0, 1, 2}
    # per-track timelines when history is kept
    tr = FaceTracker(keep_history=True)
    for i in range(4):
        tr.update(faces(big, small) if i % 2 == 0 else faces(big), i, time=i / 5)
    assert [(i, t) for i, t, _ in tr.tracks[0].history] == [(i, i / 5) for i in range(4)]
    assert [i for i, _, _ in tr.tracks[1].history] == [0, 2]


def test_key_frames_prefer_sharp_and_are_deterministic(video_scans):
    crops = [s.crops[0] for s in video_scans["cremad_hap"][0] if s.crops]
    assert len(crops) >= 8
    seq = [c.copy() for c in crops[:8]]
    best = select_key_frames(seq, k=1).indices[0]
    # blur the frame that would be chosen: it must not be chosen any more
    seq[best] = cv2.GaussianBlur(seq[best], (9, 9), 3)
    for k in (1, 3):
        kf = select_key_frames(seq, k=k)
        assert best not in kf.indices
        assert len(kf.indices) == k
        assert list(kf.indices) == sorted(set(kf.indices.tolist()))
        assert all(0 <= i < len(seq) for i in kf.indices)
        assert kf.scores["sharpness"][best] == kf.scores["sharpness"].min()
        for name in ("luv_change", "brightness", "entropy", "contrast", "sharpness", "cluster", "score"):
            assert kf.scores[name].shape == (len(seq),)
        again = select_key_frames(seq, k=k)
        assert np.array_equal(again.indices, kf.indices)
        assert np.array_equal(again.scores["score"], kf.scores["score"])


def test_key_frames_edge_cases():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(5)]
    assert select_key_frames(frames, k=10).indices.tolist() == [0, 1, 2, 3, 4]
    assert select_key_frames(frames[:1]).indices.tolist() == [0]
    assert len(select_key_frames([]).indices) == 0
    # a washed-out (low-contrast) frame is filtered out
    faded = [f.copy() for f in frames]
    faded[2] = (128 + (faded[2].astype(int) - 128) // 8).astype(np.uint8)
    kf = select_key_frames(faded, k=4, n_clusters=1)
    assert kf.scores["kept"][2] == 0 and 2 not in kf.indices
    # mixed sizes and grey input are fine
    mixed = [np.zeros((30, 30), np.uint8) + 60, rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)]
    assert select_key_frames(mixed, k=1, prefer="peak").indices.tolist() == [1]


def test_scan_video_streams_frame_faces(clips):
    media = pytest.importorskip("avemo.media")
    if not hasattr(media, "iter_frames"):
        pytest.skip("avemo.media.iter_frames is not available yet")
    from avemo.faces import iter_scan_video, scan_video

    it = iter_scan_video(clips["cremad_ang"], fps=5.0, size=112, grey=False)
    first = next(it)
    assert first.faces and first.crops[0].shape == (112, 112, 3)
    it.close()
    scans = scan_video(clips["cremad_ang"], fps=5.0, size=48, grey=True)
    assert len(scans) >= 8 and sum(bool(s.faces) for s in scans) >= 0.8 * len(scans)
    assert all(s.crops[0].shape == (48, 48) for s in scans if s.faces)
    assert [s.index for s in scans] == sorted(s.index for s in scans)


def test_prefetched_keeps_order_raises_and_stops():
    import threading

    from avemo.faces.scan import prefetched

    assert list(prefetched(iter(range(50)), 3)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("boom")

    it = prefetched(broken(), 2)
    assert next(it) == 1
    with pytest.raises(ValueError, match="boom"):
        next(it)

    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetched(endless(), 2)
    assert [next(it) for _ in range(5)] == [0, 1, 2, 3, 4]
    it.close()
    assert closed.wait(5.0)


def test_two_faces_keep_their_own_tracks(frames):
    rav, cre = frames["ravdess_mp4"], frames["cremad_hap"]
    n = min(len(rav), len(cre))
    with FaceScanner(mode="video", max_faces=2, size=48, grey=True, keep_history=True) as sc:
        scans = []
        for i in range(n):
            left = cv2.resize(rav[i][1], (480, 480))  # the bigger face
            right = cv2.copyMakeBorder(cre[i][1], 60, 60, 0, 0, cv2.BORDER_CONSTANT)
            scans.append(sc.process(np.hstack([left, right]), time=rav[i][0]))
        tracks = sc.tracker.tracks
    two = [s for s in scans if len(s.faces) == 2]
    assert len(two) >= 0.8 * n
    left_ids = {min(s.faces, key=lambda f: f.centre[0]).track_id for s in two}
    right_ids = {max(s.faces, key=lambda f: f.centre[0]).track_id for s in two}
    assert len(left_ids) == 1 and len(right_ids) == 1 and left_ids != right_ids
    assert sc.tracker.main_track_id == left_ids.pop()
    assert sum(t.n_frames for t in tracks.values()) == sum(len(s.faces) for s in scans)


def test_follow_face_moves_landmarks_with_the_image(frames, image_landmarker):
    from avemo.faces.flow import follow_face, grey

    _, img = frames["ravdess_mp4"][5]
    face = image_landmarker.detect(img)[0]
    shift = np.float32([[1, 0, 7.0], [0, 1, -4.0]])  # the whole frame moved 7 px right, 4 px up
    moved_img = cv2.warpAffine(img, shift, (img.shape[1], img.shape[0]), borderMode=cv2.BORDER_REPLICATE)
    moved = follow_face(grey(img), grey(moved_img), face)
    assert moved is not None and moved.source == "flow"
    np.testing.assert_allclose(moved.landmarks[:, :2] - face.landmarks[:, :2], [[7.0, -4.0]] * 478, atol=0.5)
    assert moved.box[0] == pytest.approx(face.box[0] + 7.0, abs=0.5)
    # a frame where the face is gone (flat grey) loses it instead of inventing one
    assert follow_face(grey(img), np.full_like(grey(img), 128), face) is None


@pytest.mark.parametrize("clip", VIDEO_CLIPS)
def test_landmarks_every_second_frame_stay_close_to_mediapipe(video_scans, frames, clip):
    exact, _ = video_scans[clip]
    with FaceScanner(mode="video", max_faces=1, size=48, grey=True, landmark_every=2) as sc:
        fast = list(sc.iter_frames(frames[clip]))
    sources = [ff.main.source for ff in fast if ff.main is not None]
    assert len(sources) >= 0.9 * len(fast)
    assert sources.count("flow") >= 0.3 * len(sources) and sources[0] == "mediapipe"
    for a, b in zip(exact, fast):
        if a.main is None or b.main is None or b.main.source != "flow":
            continue
        (ar, al), (br, bl) = a.main.eye_centres(), b.main.eye_centres()
        iod = float(np.linalg.norm(al - ar))
        assert max(np.linalg.norm(br - ar), np.linalg.norm(bl - al)) < 0.1 * iod  # measured: <= 0.05


def test_flow_does_not_carry_a_face_across_a_scene_cut(frames):
    # two clips on one canvas: the CREMA-D face on the left, then (a cut) the RAVDESS face on the right
    def placed(img: np.ndarray, x0: int) -> np.ndarray:
        canvas = np.full((480, 960, 3), 30, np.uint8)
        small = cv2.resize(img, (360 * img.shape[1] // img.shape[0], 360))[:, :440]
        canvas[60:420, x0:x0 + small.shape[1]] = small
        return canvas

    # the cut falls on frame 5, a frame the flow would carry (landmark_every=2)
    seq = [placed(im, 20) for _, im in frames["cremad_ang"][:5]]
    seq += [placed(im, 500) for _, im in frames["ravdess_mp4"][:6]]
    with FaceScanner(mode="video", size=48, landmark_every=2) as sc:
        scans = [sc.process(im, time=i / 5.0, index=i) for i, im in enumerate(seq)]
    assert all(s.main is not None for s in scans)
    assert all(s.main.centre[0] < 480 for s in scans[:5])
    assert all(s.main.centre[0] > 480 for s in scans[5:])
    assert scans[3].main.source == "flow"
    # the flow lost the old face, so the detectors ran on this frame (MediaPipe, whose tracker is
    # still on the old face, finds nothing on it; the Haar fallback does)
    assert scans[5].main.source != "flow"


def test_mediapipe_start_up_chatter_goes_to_the_native_log(clips, tmp_path):
    """MediaPipe's C++ logs (absl, TensorFlow Lite) go to the log file, not the terminal (issue: a clean first run)."""
    import subprocess
    import sys

    code = ("from avemo.faces import scan_video; "
            f"print(len(scan_video({str(clips['cremad_hap'])!r}, fps=2, size=48)))")
    env = {**__import__("os").environ, "AVEMO_CACHE": str(tmp_path)}
    env.pop("AVEMO_VERBOSE", None)
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0 and quiet.stdout.strip().isdigit()
    assert "InitGoogle" not in quiet.stderr and "XNNPACK" not in quiet.stderr, quiet.stderr
    assert "XNNPACK" in (tmp_path / "logs" / "native.log").read_text()
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**env, "AVEMO_VERBOSE": "1"})
    assert "XNNPACK" in loud.stderr


def test_mediapipe_import_skips_its_drawing_helpers_until_used():
    """MediaPipe's package imports its drawing helpers (and with them matplotlib.pyplot) and its audio tasks; the
    face path loads them lazily: absent after the import, whole on first use. A fresh process, as a user's."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from avemo.faces.landmarker import _import_mediapipe\n"
        "mp, base, vision = _import_mediapipe()\n"
        "assert 'matplotlib.pyplot' not in sys.modules and vision.FaceLandmarker is not None\n"
        "from mediapipe.tasks.python.vision import drawing_utils\n"
        "assert callable(drawing_utils.draw_landmarks) and 'matplotlib.pyplot' in sys.modules\n"
        "assert mp.tasks.audio.AudioClassifier.__name__ == 'AudioClassifier'\n"
        "assert not any(type(f).__name__ == '_LazyFinder' for f in sys.meta_path)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
